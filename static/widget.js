/* Threadline site chat loader.
 *   <script src="https://<threadline host>/widget.js" data-channel="<public id>" async></script>
 * Optional, before it: window.Threadline = {user: {id, name, email, phone, hash}}
 * where hash = HMAC-SHA256(widget secret, id), hex, computed on the site's server.
 * The chat itself lives in an iframe served by Threadline: the page's CSS and scripts do not
 * reach it, and it talks to Threadline on its own origin. */
(function () {
  "use strict";
  if (window.__threadlineWidgetLoaded) return;
  window.__threadlineWidgetLoaded = true;

  var script = document.currentScript;
  if (!script) {
    var tags = document.querySelectorAll("script[data-channel][src*='widget.js']");
    script = tags[tags.length - 1];
  }
  if (!script) return;
  var channel = script.getAttribute("data-channel");
  if (!channel) return;
  var origin = new URL(script.src, location.href).origin;
  var lang = (script.getAttribute("data-lang") || document.documentElement.lang ||
              navigator.language || "en").slice(0, 2).toLowerCase();
  var api = window.Threadline = window.Threadline || {};
  var iframe = document.createElement("iframe");
  var isOpen = false;

  function phone() { return window.matchMedia("(max-width: 480px)").matches; }

  function place() {
    var s = iframe.style;
    s.position = "fixed"; s.border = "0"; s.zIndex = "2147483000"; s.background = "transparent";
    s.colorScheme = "normal"; s.maxWidth = "100vw"; s.maxHeight = "100vh"; s.margin = "0";
    if (isOpen && phone()) {
      s.top = "0"; s.left = "0"; s.right = "0"; s.bottom = "0"; s.width = "100vw"; s.height = "100vh";
    } else if (isOpen) {
      s.top = "auto"; s.left = "auto"; s.right = "0"; s.bottom = "0";
      s.width = "400px"; s.height = "min(640px, 100vh)";
    } else {
      s.top = "auto"; s.left = "auto"; s.right = "0"; s.bottom = "0"; s.width = "96px"; s.height = "96px";
    }
  }

  function post(message) {
    if (iframe.contentWindow) iframe.contentWindow.postMessage(message, origin);
  }

  function init() {
    var user = api.user && typeof api.user === "object" ? api.user : null;
    post({
      type: "threadline:init", lang: lang, user: user,
      page: {url: location.href, referrer: document.referrer, title: document.title, lang: lang}
    });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== iframe.contentWindow || event.origin !== origin) return;
    var data = event.data || {};
    if (data.type === "threadline:ready") init();
    if (data.type === "threadline:state") { isOpen = !!data.open; place(); }
  });
  window.addEventListener("resize", place);

  api.open = function () { post({type: "threadline:open"}); };
  api.close = function () { post({type: "threadline:close"}); };

  iframe.title = "Chat";
  iframe.setAttribute("data-threadline", "widget");
  iframe.referrerPolicy = "origin"; // the frame checks the embedding origin
  iframe.src = origin + "/widget/frame?c=" + encodeURIComponent(channel) +
               "&lang=" + encodeURIComponent(lang);
  place();
  function mount() { document.body.appendChild(iframe); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
