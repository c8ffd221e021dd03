"""Run code through a Jupyter server's own REST and websocket API, as JupyterLab does."""

from __future__ import annotations

import json
import time
import uuid

import aiohttp


async def execute(base: str, token: str, code: str, timeout: float = 120, kernel_name: str = "python3") -> str:
    """Run `code` in a new `kernel_name` kernel through the Jupyter REST and websocket API; return
    its stdout."""
    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{base}/api/kernels", json={"name": kernel_name}) as resp:
            assert resp.status == 201, await resp.text()
            kernel = (await resp.json())["id"]
        ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels"
        out: list[str] = []
        async with http.ws_connect(ws_url) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send_json({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": "t",
                           "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True},
            })
            # Done when the reply (shell) has come and the kernel is idle again (iopub): the two
            # channels are not ordered with each other, and the last output may follow the reply.
            replied = idle = False
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not (replied and idle):
                msg = json.loads((await ws.receive(timeout=timeout)).data)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif msg["msg_type"] == "execute_reply":
                    replied = True
                elif msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                    idle = True
        await http.delete(f"{base}/api/kernels/{kernel}")
    return "".join(out)
