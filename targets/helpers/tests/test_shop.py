"""The app's own tests (the fuzzer's suite does not collect them: they run with
``pytest targets/helpers/tests``)."""

from __future__ import annotations

from typing import Any


def test_a_buyer_takes_one_from_the_stock(client: Any, users: Any, item: Any) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = str(users[0].id)
    assert client.post(f"/items/{item.id}/buy").status_code == 201
    assert client.get(f"/items/{item.id}").get_json()["stock"] == 0
