"""A client of vLLM's OpenAI-compatible server, standard library only (no new dependency).

    client = VllmClient("http://127.0.0.1:8000")
    client.model                                   # the served model's name (GET /v1/models)
    ids = client.complete(prompt_ids, params, on_tokens, cancelled)   # streamed token ids

`complete` posts to /v1/completions with the prompt as token ids and `stream: true`, and reads
the server-sent events as they come: `on_tokens(new_ids)` for every chunk (real per-token
progress). Cancel closes the connection: vLLM's server aborts a request whose client went away
(its `with_cancellation` wrapper), so the engine frees the sequence at its next step. A watcher
thread polls `cancelled()` and shuts the socket down, so a read blocked on a queued or
prefilling request wakes too.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse

from backend.errors import Cancelled, TaskError

CANCEL_POLL_S = 0.02  # how often a streaming request looks at its job's cancel flag
CONNECT_TIMEOUT_S = 10.0


class VllmClient:
    def __init__(self, url: str, model: str | None = None, timeout: float = 3600.0):
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise TaskError("bad_field", f"the vLLM engine URL must be http://HOST:PORT, not {url!r}")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self._scheme, self._host = parsed.scheme, parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.timeout = timeout
        self._model = model

    # -- plain requests --------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=timeout)

    def get_json(self, path: str, timeout: float = CONNECT_TIMEOUT_S) -> dict:
        conn = self._connection(timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise TaskError("model_error", f"vLLM at {self.url}{path} answered {response.status}: {body[:300]!r}")
            return json.loads(body)
        except (OSError, http.client.HTTPException) as err:
            raise TaskError("model_unavailable", f"no vLLM engine answers at {self.url}: {err}") from None
        finally:
            conn.close()

    def healthy(self) -> bool:
        try:
            conn = self._connection(2.0)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    @property
    def model(self) -> str:
        """The served model's name: the one given, else the first the server lists."""
        if self._model is None:
            models = self.get_json("/v1/models").get("data") or []
            if not models:
                raise TaskError("model_unavailable", f"the vLLM engine at {self.url} serves no model")
            self._model = str(models[0]["id"])
        return self._model

    # -- streamed completions --------------------------------------------------------------

    def complete(self, prompt: list[int], params: dict, on_tokens=None, cancelled=None,
                 path: str = "/v1/completions", body: dict | None = None) -> tuple[list[int], list]:
        """Stream one request; returns (generated token ids, the logprobs entries of every chunk).
        `params`: vLLM sampling fields (temperature, allowed_token_ids, min_tokens, ...);
        `body` replaces the prompt part for another endpoint (chat). Raises Cancelled when
        `cancelled()` turns true (the connection is closed: vLLM aborts the request)."""
        payload = {"model": self.model, "stream": True, "return_token_ids": True, **params}
        payload.update(body if body is not None else {"prompt": list(map(int, prompt))})
        conn = self._connection(CONNECT_TIMEOUT_S)
        stop = threading.Event()
        aborted = threading.Event()
        try:
            try:
                conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
                conn.sock.settimeout(self.timeout)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                raise TaskError("model_unavailable", f"no vLLM engine answers at {self.url}: {err}") from None
            if response.status != 200:
                raise TaskError("model_error", f"vLLM refused the request ({response.status}): "
                                               f"{_error_text(response.read())}")
            if cancelled is not None:
                threading.Thread(target=_watch, args=(conn.sock, cancelled, stop, aborted),
                                 name="vllm-cancel-watch", daemon=True).start()
            ids, logprobs = [], []
            try:
                for event in _events(response):
                    choice = (event.get("choices") or [{}])[0]
                    new = [int(i) for i in choice.get("token_ids") or ()]
                    ids += new
                    if choice.get("logprobs"):
                        logprobs.append(choice["logprobs"])
                    if new and on_tokens is not None:
                        on_tokens(new)
                    if cancelled is not None and cancelled():
                        raise Cancelled()
            except (OSError, http.client.HTTPException, ValueError) as err:
                if aborted.is_set():
                    raise Cancelled() from None
                raise TaskError("model_error", f"the vLLM stream broke: {err}") from None
            if aborted.is_set():
                raise Cancelled()
            return ids, logprobs
        finally:
            stop.set()
            _close(conn)


def _events(response):
    """The JSON objects of a server-sent event stream, until `data: [DONE]`."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        event = json.loads(data)
        if "error" in event:  # an error in mid-stream (e.g. the engine died)
            raise TaskError("model_error", f"vLLM: {_error_text(data)}")
        yield event


def _watch(sock, cancelled, stop: threading.Event, aborted: threading.Event) -> None:
    """Shut the socket down once the job is cancelled: the blocked read returns, vLLM sees the
    client gone and aborts the request."""
    while not stop.wait(CANCEL_POLL_S):
        if cancelled():
            aborted.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


def _close(conn: http.client.HTTPConnection) -> None:
    try:
        if conn.sock is not None:
            conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error", data)
        return str(error.get("message", error) if isinstance(error, dict) else error)[:500]
    except ValueError:
        return body[:500].decode("utf-8", "replace")


def wait_until_healthy(client: VllmClient, timeout: float, alive=lambda: True, cancelled=None) -> None:
    """Poll /health until it answers 200; TaskError when `alive()` turns false or on timeout."""
    deadline = time.monotonic() + timeout
    while not client.healthy():
        if not alive():
            raise TaskError("model_error", "the vLLM engine process exited while starting")
        if cancelled is not None and cancelled():
            raise Cancelled()
        if time.monotonic() > deadline:
            raise TaskError("model_error", f"the vLLM engine at {client.url} did not answer within {timeout:g} s")
        time.sleep(0.25)
