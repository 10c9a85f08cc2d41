"""Input the database cannot hold is a 422 naming the field, never a 500 (issue 14, found
by schemathesis): ids past the INTEGER range, `after=7.5e25`, NUL characters, negative and
huge money amounts; and the OpenAPI document's bounds are numbers, its money fields typed as
what the answers carry (decimal strings)."""
from __future__ import annotations


def test_ids_past_the_column_range_are_404_or_422(api):
    assert api.get("/conversations/21797814308754224578560").status_code == 404
    assert api.get(f"/conversations/{2**31}").status_code == 404
    assert api.get("/events", query_string={"after": "75000000000000000000000000"}).status_code == 422
    assert api.get("/events", query_string={"after": "7.5e25"}).status_code == 422
    response = api.post("/deals", json={"external_ref": "x", "title": "T", "customer_id": 2**40})
    assert response.status_code == 422
    assert "customer_id" in response.json["detail"]["json"]


def test_nul_characters_are_422(api):
    response = api.post("/deals", json={"external_ref": "n\u0000ul", "title": "Zażółć",
                                        "customer": {"email": "nul@example.com"}})
    assert response.status_code == 422 and "NUL" in response.json["message"]
    response = api.post("/orders", json={"external_ref": "o-1", "items": [{"name": "a\u0000"}],
                                         "customer": {"email": "nul@example.com"}})
    assert response.status_code == 422
    assert api.get("/customers", query_string={"q": "Анна\u0000"}).status_code == 422


def test_money_is_bounded_like_its_column_and_never_negative(api):
    base = {"title": "Сделка", "customer": {"email": "money@example.com"}}
    for amount in (-5, -1e30, 1e30, "1e400", "NaN"):
        response = api.post("/deals", json={**base, "external_ref": f"d{amount}", "amount": amount})
        assert response.status_code == 422, (amount, response.json)
        assert "amount" in response.json["detail"]["json"]
    response = api.post("/orders", json={"external_ref": "o-2", "total": -1,
                                         "customer": {"email": "money@example.com"}})
    assert response.status_code == 422
    created = api.post("/deals", json={**base, "external_ref": "ok", "amount": 89})
    assert created.status_code == 201 and created.json["amount"] == "89.00"
    patched = api.patch(f"/deals/{created.json['id']}", json={"amount": -1})
    assert patched.status_code == 422


def test_the_openapi_document_says_what_the_answers_carry(app):
    document = app.test_client().get("/api/v1/openapi.json").json

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("minimum", "maximum"):
                    assert isinstance(value, (int, float)), f"{path}/{key} = {value!r}"
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(document)
    schemas = document["components"]["schemas"]
    for name, field in (("DealOut", "amount"), ("OrderOut", "total"), ("DealResult", "amount")):
        prop = schemas[name]["properties"][field]
        assert prop["format"] == "decimal" and "string" in prop["type"], (name, prop)
    assert schemas["DealIn"]["properties"]["amount"]["minimum"] == 0
