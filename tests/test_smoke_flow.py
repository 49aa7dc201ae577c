from tests.conftest import Flow


def test_code_flow_end_to_end(client, account, broker):
    flow = Flow(client)
    code = flow.code()
    response = flow.token(code)
    assert response.status_code == 200, response.json
    body = response.json
    claims = broker.keys.verify(body["id_token"])
    assert claims["nonce"] == flow.nonce
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200, info.json
    assert info.json["sub"] == claims["sub"]
    assert info.json["given_name"] == "Jean Pierre"
