/* The widget inside its iframe (served by Threadline). Visitor and agent text is only ever
 * put into the page with textContent: never parsed as HTML. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("tl-config").textContent);
  var T = {
    en: {title: "Chat with us", online: "We are online", away: "We are away right now",
         awayText: "No one is here right now. Leave your email and we will answer there.",
         awayKnown: "No one is here right now. We will answer as soon as we are back.",
         save: "Save", saved: "Thanks! We will write to you.",
         prechat: "Before we start, tell us how to reach you.", name: "Name", email: "Email",
         phone: "Phone", start: "Start chat", placeholder: "Write a message…", send: "Send",
         close: "Close", open: "Chat", typing: "{name} is typing…", someone: "Agent",
         sending: "Sending…", sent: "Sent", failed: "Not sent — tap to retry",
         needContact: "Please give an email or a phone number.", badEmail: "This email looks wrong.",
         badPhone: "This phone number looks wrong.", tooLarge: "The file is too large (max {size}).",
         reconnecting: "Reconnecting…", refused: "The chat is not available here.",
         rateLimited: "You are writing too fast. Please wait a moment.", attach: "Attach a file",
         unverified: "Please sign in to chat.", rate: "{n} of 5", rated: "Thank you for your rating!", bot: "Bot",
         searchAnswers: "Search answers…", search: "Search", noAnswers: "No answer found — write to us below.",
         readMore: "Read more"},
    ru: {title: "Напишите нам", online: "Мы на связи", away: "Сейчас нас нет на месте",
         awayText: "Сейчас никого нет. Оставьте email — мы ответим туда.",
         awayKnown: "Сейчас никого нет. Мы ответим, как только вернёмся.",
         save: "Сохранить", saved: "Спасибо! Мы вам напишем.",
         prechat: "Прежде чем начать, оставьте контакт для связи.", name: "Имя", email: "Email",
         phone: "Телефон", start: "Начать чат", placeholder: "Напишите сообщение…", send: "Отправить",
         close: "Закрыть", open: "Чат", typing: "{name} печатает…", someone: "Оператор",
         sending: "Отправляется…", sent: "Отправлено", failed: "Не отправлено — нажмите, чтобы повторить",
         needContact: "Укажите email или телефон.", badEmail: "Проверьте email.",
         badPhone: "Проверьте номер телефона.", tooLarge: "Файл слишком большой (максимум {size}).",
         reconnecting: "Переподключение…", refused: "Чат здесь недоступен.",
         rateLimited: "Слишком часто. Подождите немного.", attach: "Прикрепить файл",
         unverified: "Войдите, чтобы написать в чат.", rate: "{n} из 5", rated: "Спасибо за оценку!", bot: "Бот",
         searchAnswers: "Поиск ответов…", search: "Найти", noAnswers: "Ответ не найден — напишите нам ниже.",
         readMore: "Подробнее"},
    pl: {title: "Napisz do nas", online: "Jesteśmy dostępni", away: "Teraz nas nie ma",
         awayText: "Nikogo teraz nie ma. Zostaw e-mail, odpowiemy tam.",
         awayKnown: "Nikogo teraz nie ma. Odpowiemy, gdy tylko wrócimy.",
         save: "Zapisz", saved: "Dziękujemy! Napiszemy do Ciebie.",
         prechat: "Zanim zaczniemy, podaj kontakt do siebie.", name: "Imię", email: "E-mail",
         phone: "Telefon", start: "Rozpocznij czat", placeholder: "Napisz wiadomość…", send: "Wyślij",
         close: "Zamknij", open: "Czat", typing: "{name} pisze…", someone: "Konsultant",
         sending: "Wysyłanie…", sent: "Wysłano", failed: "Nie wysłano — kliknij, aby ponowić",
         needContact: "Podaj e-mail lub numer telefonu.", badEmail: "Sprawdź adres e-mail.",
         badPhone: "Sprawdź numer telefonu.", tooLarge: "Plik jest za duży (maks. {size}).",
         reconnecting: "Ponowne łączenie…", refused: "Czat nie jest tu dostępny.",
         rateLimited: "Za szybko. Poczekaj chwilę.", attach: "Dołącz plik",
         unverified: "Zaloguj się, aby pisać na czacie.", rate: "{n} z 5", rated: "Dziękujemy za ocenę!", bot: "Bot",
         searchAnswers: "Szukaj odpowiedzi…", search: "Szukaj", noAnswers: "Brak odpowiedzi — napisz do nas poniżej.",
         readMore: "Więcej"}
  };
  var FATAL = ["bad_frame_token", "unknown_channel", "origin_not_allowed", "invalid_user_hash",
               "verification_required"];
  var lang = T[cfg.lang] ? cfg.lang : "en";
  function t(key, vars) {
    var text = (T[lang] && T[lang][key]) || T.en[key] || key;
    Object.keys(vars || {}).forEach(function (k) { text = text.split("{" + k + "}").join(vars[k]); });
    return text;
  }
  function $(id) { return document.getElementById(id); }

  // localStorage (partitioned per embedding site by the browser); memory if it is blocked
  var memory = {};
  var prefix = "threadline:" + cfg.channel + ":";
  var store = {
    get: function (k) { try { return localStorage.getItem(prefix + k); } catch (e) { return memory[k] || null; } },
    set: function (k, v) { try { localStorage.setItem(prefix + k, v); } catch (e) { memory[k] = v; } }
  };
  function storedJSON(k) { try { return JSON.parse(store.get(k) || "null"); } catch (e) { return null; } }

  var state = {open: false, unread: 0, lastId: 0, user: null,
               page: null, socket: null, verified: false, known: false, prechatNeeded: false,
               pendingReceipts: [], started: false, stopped: false};
  var rendered = {};   // message id -> element
  var pending = {};    // client id -> element

  function applyTexts() {
    document.documentElement.lang = lang;
    $("tl-title").textContent = t("title");
    $("tl-close").setAttribute("aria-label", t("close"));
    $("tl-launcher").setAttribute("aria-label", t("open"));
    $("tl-input").placeholder = t("placeholder");
    $("tl-send").textContent = t("send");
    $("tl-answers-q").placeholder = t("searchAnswers");
    $("tl-answers-q").setAttribute("aria-label", t("searchAnswers"));
    $("tl-answers-go").textContent = t("search");
    $("tl-attach-label").title = t("attach");
    $("tl-prechat-intro").textContent = t("prechat");
    $("tl-l-name").textContent = t("name");
    $("tl-l-email").textContent = t("email");
    $("tl-l-phone").textContent = t("phone");
    $("tl-prechat-start").textContent = t("start");
    $("tl-away-save").textContent = t("save");
    $("tl-away-email").placeholder = t("email");
  }

  function post(message) { if (window.parent !== window) window.parent.postMessage(message, "*"); }

  function setOpen(open) {
    state.open = open;
    $("tl-panel").hidden = !open;
    $("tl-launcher").hidden = open;
    post({type: "threadline:state", open: open});
    store.set("open", open ? "1" : "0");
    if (open) {
      state.unread = 0;
      renderBadge();
      sendReceipts("read");
      showPrechat();
      setTimeout(function () { $("tl-input").focus(); scrollDown(); }, 0);
    }
  }

  function renderBadge() {
    var badge = $("tl-badge");
    badge.hidden = state.unread === 0;
    badge.textContent = state.unread > 99 ? "99+" : String(state.unread);
  }

  function scrollDown() { var list = $("tl-messages"); list.scrollTop = list.scrollHeight; }

  function showError(text) { var el = $("tl-error"); el.textContent = text || ""; el.hidden = !text; }

  function fmtSize(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.ceil(bytes / 1024) + " KB";
  }

  function fmtTime(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString(lang, {hour: "2-digit", minute: "2-digit"});
  }

  // a feedback question: five stars; a press sends the score as the visitor's reply ("★ 4"),
  // which the server records as the answer (the score may be changed by another press)
  function stars(m) {
    var box = document.createElement("div");
    box.className = "tl-stars";
    box.setAttribute("role", "group");
    var chosen = Number(store.get("csat:" + m.id) || 0);
    for (var n = 1; n <= 5; n += 1) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "tl-star" + (n <= chosen ? " tl-on" : "");
      b.setAttribute("data-score", String(n));
      b.setAttribute("aria-label", t("rate", {n: n}));
      b.setAttribute("aria-pressed", n === chosen ? "true" : "false");
      b.textContent = "\u2605";
      b.onclick = (function (score) {
        return function () {
          store.set("csat:" + m.id, String(score));
          Array.prototype.forEach.call(box.querySelectorAll(".tl-star"), function (s) {
            var value = Number(s.getAttribute("data-score"));
            s.className = "tl-star" + (value <= score ? " tl-on" : "");
            s.setAttribute("aria-pressed", value === score ? "true" : "false");
          });
          thanks.hidden = false;
          sendMessage("\u2605 " + score);
        };
      })(n);
      box.appendChild(b);
    }
    var thanks = document.createElement("div");
    thanks.className = "tl-rated";
    thanks.textContent = t("rated");
    thanks.hidden = !chosen;
    box.appendChild(thanks);
    return box;
  }

  function answeredAfter(m) {
    // a later message of the visitor (by id: answers and pushes may arrive in any order)
    return Array.prototype.some.call(document.querySelectorAll("#tl-messages .tl-in[data-id]"),
      function (li) { return Number(li.getAttribute("data-id")) > (m.id || 0); });
  }

  function fill(el, m) {
    el.textContent = "";
    el.className = "tl-msg " + (m.direction === "in" ? "tl-in" : "tl-out");
    el.setAttribute("data-id", m.id || "");
    if (m.direction === "out") {
      var who = document.createElement("div");
      who.className = "tl-author";
      who.textContent = m.bot ? t("bot") : (m.author || t("someone"));
      el.appendChild(who);
    }
    if (m.text) {
      var body = document.createElement("div");
      body.className = "tl-text";
      body.textContent = m.text;
      el.appendChild(body);
    }
    if (m.csat && m.id) el.appendChild(stars(m));
    (m.attachments || []).forEach(function (a) {
      if (a.url && /^image\//.test(a.type) && a.type !== "image/svg+xml") {
        var img = document.createElement("img");
        img.src = a.url; img.alt = a.name; img.loading = "lazy";
        el.appendChild(img);
      } else {
        var link = document.createElement(a.url ? "a" : "span");
        if (a.url) { link.href = a.url; link.target = "_blank"; link.rel = "noopener"; }
        link.textContent = "\uD83D\uDCCE " + a.name + (a.error ? " (" + a.error + ")" : "");
        el.appendChild(link);
      }
    });
    if (m.direction === "out" && (m.buttons || []).length && !m.answered && !answeredAfter(m)) {
      // quick replies: pressing one sends its title, with its id for the bot
      var row = document.createElement("div");
      row.className = "tl-buttons";
      m.buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "tl-quick";
        button.setAttribute("data-button", b.id);
        button.textContent = b.title;
        button.addEventListener("click", function () {
          m.answered = true;
          if (row.parentNode) row.parentNode.removeChild(row);
          sendMessage(b.title, null, null, b.id);
        });
        row.appendChild(button);
      });
      el.appendChild(row);
    }
    var meta = document.createElement("div");
    meta.className = "tl-meta";
    meta.textContent = fmtTime(m.created_at || new Date().toISOString()) +
      (m.direction === "in" ? " · " + t(m.local || "sent") : "");
    el.appendChild(meta);
    el.setAttribute("data-status", m.local || m.status || "");
  }

  function dropQuickReplies(beforeId) {
    // once the visitor wrote, earlier quick replies are answered: they go away
    Array.prototype.forEach.call(document.querySelectorAll("#tl-messages .tl-buttons"),
      function (row) {
        var id = Number(row.parentNode.getAttribute("data-id")) || 0;
        if (!beforeId || id < beforeId) row.parentNode.removeChild(row);
      });
  }

  function addMessage(m) {
    if (m.direction === "in" && m.id) dropQuickReplies(m.id);
    var el = (m.id && rendered[m.id]) || (m.client_id && pending[m.client_id]);
    var fresh = !el;
    if (!el) { el = document.createElement("li"); $("tl-messages").appendChild(el); }
    fill(el, m);
    if (m.id) {
      rendered[m.id] = el;
      if (m.client_id) delete pending[m.client_id];
      if (m.id > state.lastId) state.lastId = m.id;
    }
    if (m.direction === "out" && fresh && m.id) {
      hideTyping();
      state.pendingReceipts.push(m.id);
      if (!state.open) { state.unread += 1; renderBadge(); }
      sendReceipts(state.open && document.visibilityState !== "hidden" ? "read" : "delivered");
    }
    scrollDown();
    return el;
  }

  function sendReceipts(status) {
    if (!state.socket || !state.pendingReceipts.length) return;
    var ids = state.pendingReceipts.slice();
    if (status === "read") state.pendingReceipts = [];
    state.socket.emit("receipt", {ids: ids, status: status});
  }

  var typingTimer = null;
  function hideTyping() { $("tl-typing").hidden = true; clearTimeout(typingTimer); }
  function showTyping(data) {
    if (!data.typing) { hideTyping(); return; }
    $("tl-typing").textContent = t("typing", {name: data.name || t("someone")});
    $("tl-typing").hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 8000);
  }

  function showAway(status) {
    var away = status && status.away;
    $("tl-subtitle").textContent = away ? t("away") : t("online");
    $("tl-away").hidden = !away;
    if (!away) return;
    var prechat = storedJSON("prechat") || {};
    var haveEmail = !!(prechat.email || (state.user && state.user.email));
    $("tl-away-text").textContent = status.away_message || (haveEmail ? t("awayKnown") : t("awayText"));
    $("tl-away-form").hidden = haveEmail;
  }

  function prechatMode() { return cfg.prechat || "false"; }

  function showPrechat() {
    var needed = state.prechatNeeded && !storedJSON("prechat") && !state.verified;
    $("tl-prechat").hidden = !needed || state.stopped;
    $("tl-composer").hidden = needed || state.stopped;
    var mode = prechatMode();
    $("tl-row-email").hidden = mode === "phone";
    $("tl-row-phone").hidden = mode === "email";
  }

  function validContact(c) {
    var mode = prechatMode();
    if (c.email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(c.email)) return "badEmail";
    if (c.phone && (c.phone.match(/\d/g) || []).length < 5) return "badPhone";
    if (mode === "email" && !c.email) return "badEmail";
    if (mode === "phone" && !c.phone) return "badPhone";
    if (mode === "true" && !c.email && !c.phone) return "needContact";
    return null;
  }

  function saveContact(contact, done) {
    state.socket.emit("prechat", contact, function (ack) {
      if (ack && ack.ok) {
        var merged = Object.assign({}, storedJSON("prechat") || {}, contact);
        store.set("prechat", JSON.stringify(merged));
      }
      done(ack || {ok: false});
    });
  }

  function randomId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function sendMessage(text, upload, fileName, buttonId) {
    dropQuickReplies();
    var clientId = randomId();
    var local = {client_id: clientId, direction: "in", text: text, local: "sending",
                 created_at: new Date().toISOString(),
                 attachments: fileName ? [{name: fileName, type: ""}] : []};
    var el = document.createElement("li");
    $("tl-messages").appendChild(el);
    pending[clientId] = el;
    fill(el, local);
    scrollDown();
    var emit = function () {
      el.onclick = null;
      local.local = "sending"; fill(el, local);
      var data = {text: text, client_id: clientId, upload: upload};
      if (buttonId) data.button_id = buttonId;
      state.socket.timeout(15000).emit("message", data,
        function (err, ack) {
          if (!err && ack && ack.ok && ack.message) { addMessage(ack.message); showError(""); return; }
          if (!err && ack && ack.ok) { local.local = "sent"; fill(el, local); return; }
          local.local = "failed"; fill(el, local); el.className += " tl-failed";
          if (ack && ack.error === "rate_limited") showError(t("rateLimited"));
          el.onclick = emit;
        });
    };
    emit();
  }

  function upload(file) {
    if (file.size > cfg.max_file_bytes) { showError(t("tooLarge", {size: fmtSize(cfg.max_file_bytes)})); return; }
    var form = new FormData();
    form.append("file", file, file.name);
    fetch("/widget/upload", {method: "POST", body: form, credentials: "omit",
      headers: {"X-Threadline-Frame": cfg.frame, "X-Threadline-Visitor": store.get("visitor") || ""}})
      .then(function (r) { return r.json().then(function (body) { return {status: r.status, body: body}; }); })
      .then(function (res) {
        if (res.status === 413) { showError(t("tooLarge", {size: fmtSize(cfg.max_file_bytes)})); return; }
        if (res.status === 429) { showError(t("rateLimited")); return; }
        if (!res.body.upload) { showError(res.body.error || "upload failed"); return; }
        sendMessage("", res.body.upload, file.name);
      })
      .catch(function () { showError(t("reconnecting")); });
  }

  function connect() {
    var socket = state.socket = io("/widget", {
      path: cfg.socket_path,
      auth: function (cb) {
        cb({frame: cfg.frame, visitor: store.get("visitor"), user: state.user,
            prechat: storedJSON("prechat"), page: state.page, lang: lang,
            // a reconnect asks only for what it missed; a fresh page load for the thread
            after: state.lastId});
      }
    });
    socket.on("session", function (s) {
      if (s.visitor) store.set("visitor", s.visitor);
      state.verified = s.verified; state.known = s.known; state.prechatNeeded = s.prechat_needed;
      (s.messages || []).forEach(addMessage);
      showAway(s.status);
      showPrechat();
      showError("");
      document.body.setAttribute("data-connected", "1");
    });
    socket.on("thread.message", addMessage);
    socket.on("typing", showTyping);
    socket.on("connect_error", function (err) {
      document.body.removeAttribute("data-connected");
      if (FATAL.indexOf(err && err.message) >= 0) {
        state.stopped = true;
        socket.disconnect();
        document.body.setAttribute("data-refused", err.message);
        showError(err.message === "verification_required" ? t("unverified") : t("refused"));
        $("tl-composer").hidden = true;
      } else {
        showError(t("reconnecting"));
      }
    });
    socket.on("disconnect", function () {
      document.body.removeAttribute("data-connected");
      if (!state.stopped) showError(t("reconnecting"));
    });
  }

  function start(init) {
    if (state.started) return;
    state.started = true;
    init = init || {};
    if (init.lang && T[String(init.lang).slice(0, 2)]) lang = String(init.lang).slice(0, 2);
    applyTexts();
    state.user = init.user && init.user.id ? init.user : (init.user || null);
    // first touch: the page (with its UTM tags and click ids) where the visitor first came
    state.page = storedJSON("page");
    if (!state.page && init.page) { state.page = init.page; store.set("page", JSON.stringify(init.page)); }
    connect();
    if (store.get("open") === "1") setOpen(true);
  }

  // --- wiring -------------------------------------------------------------------------
  applyTexts();
  function showAnswers(items) {
    var list = $("tl-answers-list");
    list.textContent = "";
    if (!items.length) {
      var none = document.createElement("li");
      none.className = "tl-answer-none";
      none.textContent = t("noAnswers");
      list.appendChild(none);
    }
    items.forEach(function (a) {
      var li = document.createElement("li");
      li.className = "tl-answer";
      var title = document.createElement("strong");
      title.textContent = a.title;
      var summary = document.createElement("p");
      summary.textContent = a.summary;
      var more = document.createElement("a");
      more.href = a.url; more.target = "_blank"; more.rel = "noopener";
      more.textContent = t("readMore");
      li.appendChild(title); li.appendChild(summary); li.appendChild(more);
      list.appendChild(li);
    });
    list.hidden = false;
  }

  $("tl-answers").addEventListener("submit", function (e) {
    e.preventDefault();
    var q = $("tl-answers-q").value.trim();
    if (!q) { $("tl-answers-list").hidden = true; return; }
    if (!state.socket) return;
    state.socket.timeout(10000).emit("answers", {q: q}, function (err, ack) {
      if (!err && ack && ack.ok) showAnswers(ack.items || []);
    });
  });
  $("tl-answers-q").addEventListener("search", function () {
    if (!this.value) $("tl-answers-list").hidden = true;
  });

  $("tl-launcher").addEventListener("click", function () { setOpen(true); });
  $("tl-close").addEventListener("click", function () { setOpen(false); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && state.open) setOpen(false); });
  document.addEventListener("visibilitychange", function () {
    if (state.open && document.visibilityState === "visible") sendReceipts("read");
  });

  var typingSent = 0, typingStop = null;
  $("tl-input").addEventListener("input", function () {
    if (!state.socket) return;
    var now = Date.now();
    if (now - typingSent > 3000) { typingSent = now; state.socket.emit("typing", {typing: true}); }
    clearTimeout(typingStop);
    typingStop = setTimeout(function () { typingSent = 0; state.socket.emit("typing", {typing: false}); }, 4000);
  });
  $("tl-input").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("tl-composer").requestSubmit(); }
  });
  $("tl-composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("tl-input").value.trim();
    if (!text || !state.socket) return;
    $("tl-input").value = "";
    sendMessage(text);
  });
  $("tl-file").addEventListener("change", function () {
    var file = this.files && this.files[0];
    this.value = "";
    if (file) upload(file);
  });
  $("tl-prechat").addEventListener("submit", function (e) {
    e.preventDefault();
    var contact = {};
    ["name", "email", "phone"].forEach(function (k) {
      var v = $("tl-p-" + k).value.trim();
      if (v) contact[k] = v;
    });
    var problem = validContact(contact);
    var errorEl = $("tl-prechat-error");
    if (problem) { errorEl.textContent = t(problem); errorEl.hidden = false; return; }
    saveContact(contact, function (ack) {
      if (!ack.ok) {
        errorEl.textContent = t(ack.field === "phone" ? "badPhone" : "badEmail"); errorEl.hidden = false; return;
      }
      errorEl.hidden = true;
      state.prechatNeeded = false;
      showPrechat();
      $("tl-input").focus();
    });
  });
  $("tl-away-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var email = $("tl-away-email").value.trim();
    if (validContact({email: email}) === "badEmail" || !email) return;
    var contact = Object.assign({}, storedJSON("prechat") || {}, {email: email});
    saveContact(contact, function (ack) {
      if (ack.ok) { $("tl-away-form").hidden = true; $("tl-away-text").textContent = t("saved"); }
    });
  });

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) return;
    if (cfg.parent_origin && event.origin !== cfg.parent_origin) return;
    var data = event.data || {};
    if (data.type === "threadline:init") start(data);
    if (data.type === "threadline:open") setOpen(true);
    if (data.type === "threadline:close") setOpen(false);
  });
  if (window.parent === window) start({});
  else {
    post({type: "threadline:ready"});
    setTimeout(function () { start({}); }, 3000); // a host page that never answers
  }
})();
