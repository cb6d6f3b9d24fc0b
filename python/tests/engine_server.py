"""An engine-like OpenAI-compatible server for tracemark's engine-native gateway tests.

It samples a tiny, randomly initialised torch model (tests/_tiny_model.py) whose vocabulary is
cl100k_base's ids, and marks its output the way an engine does: `TracemarkLogitsProcessor` (this
package) runs in its sampling loop, after a constraint processor that keeps the model to " word"
tokens (so that the gateway, which re-tokenizes the streamed text, sees the ids that were sampled).
Standard library HTTP only (http.server), server-sent events like vLLM's:

  GET  /v1/models
  POST /v1/chat/completions, /v1/completions   (stream true: SSE chunks, one per token; else JSON)
  POST /control  {"watermark": false}           switches the mark off (or on) while running

Usage (the tests start it as a process and read the port from its first line of stdout):

  python3 engine_server.py --key KEY.json --vocab VOCAB.json [--no-watermark] [--port 0]

VOCAB.json is {"ids": [...], "pieces": [...]}: the allowed token ids and their text, written by the
test with @tracemark/tokenizers (this package does not encode or decode text).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import torch  # noqa: E402

from _tiny_model import TinyLanguageModel, allow_only  # noqa: E402
from tracemark import load_key_file  # noqa: E402
from tracemark.torch_processors import TracemarkLogitsProcessor  # noqa: E402

VOCAB = 100_277
MODEL_ID = "tiny-torch-engine"


class Engine:
    def __init__(self, key_path: str, vocab_path: str, watermark: bool, seed: int, top_k: int) -> None:
        self.key = load_key_file(key_path)
        with open(vocab_path, encoding="utf-8") as handle:
            vocab = json.load(handle)
        self.ids: list[int] = vocab["ids"]
        self.pieces: dict[int, str] = dict(zip(vocab["ids"], vocab["pieces"]))
        self.by_piece: dict[str, int] = {piece: i for i, piece in self.pieces.items()}
        self.constraint = allow_only(self.ids, VOCAB)
        self.model = TinyLanguageModel(VOCAB, seed=seed)
        self.watermark = watermark
        self.top_k = top_k
        self.requests = 0
        self.lock = threading.Lock()

    def prompt_ids(self, text: str) -> list[int]:
        """The prompt's words that are tokens of the vocabulary (an engine would tokenize it)."""
        ids = [self.by_piece[f" {word}"] for word in text.lower().split() if f" {word}" in self.by_piece]
        return ids or [self.ids[0]]

    def stream(self, prompt: str, max_tokens: int, temperature: float, top_p: float, seed: int):
        """Yields the text of each sampled token."""
        # The processor truncates (top-k, then its widened nucleus) itself, as an engine's sampler would.
        processors = [self.constraint]
        if self.watermark:
            processors.append(
                TracemarkLogitsProcessor(self.key, temperature=temperature, top_k=self.top_k, top_p=top_p)
            )
        generator = torch.Generator().manual_seed(seed)
        input_ids = torch.tensor([self.prompt_ids(prompt)])
        with torch.no_grad():
            logits, state = self.model(input_ids)
            for _ in range(max_tokens):
                scores = logits
                for processor in processors:
                    scores = processor(input_ids, scores)
                if temperature == 0:
                    chosen = torch.argmax(scores, dim=-1)
                else:
                    probabilities = torch.softmax(scores / temperature, dim=-1)
                    chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
                input_ids = torch.cat([input_ids, chosen[:, None]], dim=1)
                yield self.pieces[int(chosen[0])]
                logits, state = self.model(chosen[:, None], state)


def make_handler(engine: Engine):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

        def send_json(self, status: int, value: object) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
            else:
                self.send_json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?")[0]
            if path == "/control":
                engine.watermark = bool(body.get("watermark", True))
                self.send_json(200, {"watermark": engine.watermark})
                return
            if path not in ("/v1/chat/completions", "/v1/completions"):
                self.send_json(404, {"error": {"message": "not found"}})
                return
            chat = path == "/v1/chat/completions"
            if chat:
                prompt = " ".join(str(m.get("content") or "") for m in body.get("messages", []))
            else:
                prompt = str(body.get("prompt") or "")
            with engine.lock:
                engine.requests += 1
                number = engine.requests
            seed = body.get("seed") if isinstance(body.get("seed"), int) else 1000 + number
            tokens = engine.stream(
                prompt,
                int(body.get("max_tokens") or 16),
                float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0),
                float(body.get("top_p") or 1.0),
                int(seed),
            )
            ident, created = f"tiny-{number}", int(time.time())
            if not body.get("stream"):
                text = "".join(tokens)
                choice = (
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                    if chat
                    else {"index": 0, "text": text, "finish_reason": "length"}
                )
                self.send_json(200, {"id": ident, "object": "chat.completion" if chat else "text_completion",
                                     "created": created, "model": MODEL_ID, "choices": [choice]})
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.end_headers()
            kind = "chat.completion.chunk" if chat else "text_completion"

            def event(choice: dict) -> None:
                chunk = {"id": ident, "object": kind, "created": created, "model": MODEL_ID, "choices": [choice]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            try:
                if chat:
                    event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                for piece in tokens:
                    event({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                          else {"index": 0, "text": piece, "finish_reason": None})
                event({"index": 0, "delta": {}, "finish_reason": "length"} if chat
                      else {"index": 0, "text": "", "finish_reason": "length"})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", required=True, help="tracemark key file (from `tracemark keygen`)")
    parser.add_argument("--vocab", required=True, help="JSON {ids, pieces} of the allowed tokens")
    parser.add_argument("--no-watermark", action="store_true", help="sample without the processor")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=3, help="the model's initialisation seed")
    parser.add_argument("--top-k", type=int, default=64, help="the sampler's top-k (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine(args.key, args.vocab, not args.no_watermark, args.seed, args.top_k)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(engine))
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
