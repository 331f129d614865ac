"""Start the Decoding Playground web app: build the Gradio demo and launch it; nothing else.

    python app.py                      # the embedded SmolLM2-135M-Instruct on http://127.0.0.1:7860
    python app.py --model ./my-model  # another default model (a folder or a Hugging Face Hub id)
    python app.py --host 0.0.0.0 --port 8000 --share
    python app.py --device cuda --dtype float16

Defaults suit a Hugging Face Space: the port comes from GRADIO_SERVER_PORT (else 7860), the host from
GRADIO_SERVER_NAME (else 127.0.0.1; Spaces set 0.0.0.0), the device and dtype from PLAYGROUND_DEVICE and
PLAYGROUND_DTYPE (else auto), a model spread over several GPUs from PLAYGROUND_DEVICE_MAP. Hosted-mode limits
come from PLAYGROUND_* variables (see docs/ui.md); ZeroGPU's from playground/gpu.py (docs/zerogpu.md). This file
knows nothing about decoding or the page's layout.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import os

# Hosted, a Space serves many visitors at once, from a pool of ~40 request threads. Set before torch is imported;
# a variable given in the environment wins over each.
# - Each request's torch work on one thread, rather than every request's ops fighting over one pool of two
#   (30 students on 2 cores: Step p95 4.3 s with two threads an op, 0.67 s with one). OMP_NUM_THREADS.
#   A forward shared by many runs uses every core (PLAYGROUND_SHARE_THREADS), and its OpenMP helper thread then
#   sleeps at once instead of spinning for more work beside the runs picking their tokens. OMP_WAIT_POLICY.
# - Memory that visitors' runs leave behind goes back to the system once their runs are parked (measured with
#   20 API sessions of 15 Steps each, then every run parked and `malloc_trim`; the warm server as the base):
#   . glibc's malloc at two arenas, not 8 per core (one taken by each thread that allocates while another holds
#     one): +304 MB while live, +131 MB once parked, against +488 / +257 with glibc's default. MALLOC_ARENA_MAX.
#   . MKL's own memory manager off: it keeps a cache of matmul buffers in every thread that ran one, for as long as
#     the thread lives (request threads live as long as the server): +194 / +34 MB with it off. MKL_DISABLE_FAST_MM.
#   . glibc's mmap threshold fixed at 8 MB: by default it climbs to 32 MB after the first big block is freed, and
#     from then on blocks up to that size come from the heap, between smaller blocks that pin it: +149 / +19 MB.
#     (A 64 KB threshold held a little less, +75 / +19, but mapped and unmapped nearly every tensor a shared forward
#     makes: 30 runs pressing Run at once took 14.5 s instead of 9.5, engine alone.) MALLOC_MMAP_THRESHOLD_.
#   None of these slowed a Step alone (38-39 ms a token on this CPU, each way).
if os.environ.get("PLAYGROUND_HOSTED", "").strip().lower() in ("1", "true", "yes", "on"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to set
        libc = ctypes.CDLL("libc.so.6")
        if "MALLOC_ARENA_MAX" not in os.environ:
            libc.mallopt(-8, 2)  # M_ARENA_MAX
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            libc.mallopt(-3, 8 * 2**20)  # M_MMAP_THRESHOLD (and no dynamic threshold)

from playground import gpu  # noqa: F401 - first: on ZeroGPU, `spaces` must be imported before CUDA is touched


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Decoding Playground: see how a language model picks its next token.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for all)")  # fmt: skip
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")  # fmt: skip
    parser.add_argument("--model", default=os.environ.get("PLAYGROUND_MODEL") or None,
                        help="default model: a Hugging Face Hub id or a local folder (default: $PLAYGROUND_MODEL, "
                             "else the embedded SmolLM2-135M-Instruct, else its Hub copy)")  # fmt: skip
    parser.add_argument("--device", default=os.environ.get("PLAYGROUND_DEVICE") or "auto",
                        help="where the models run: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps "
                             "(default: $PLAYGROUND_DEVICE or auto)")  # fmt: skip
    parser.add_argument("--dtype", default=os.environ.get("PLAYGROUND_DTYPE") or "auto",
                        help="auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16 or float16 "
                             "(default: $PLAYGROUND_DTYPE or auto)")  # fmt: skip
    parser.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    parser.add_argument("--no-preload", action="store_true", help="load the default model on the first request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from playground import ui
    from playground.loading import load_engine, pick_device, pick_dtype

    try:
        pick_dtype(pick_device(args.device), args.dtype)  # a bad --device or --dtype fails now, in one sentence
    except ValueError as e:
        raise SystemExit(f"app.py: error: {e}") from None
    ui.shared.REGISTRY.loader = functools.partial(load_engine, device=args.device, dtype=args.dtype)
    ui.shared.REGISTRY.default_spec = args.model  # None: the embedded model, or its Hub copy where not installed
    if not args.no_preload:
        ui.shared.REGISTRY.get(ui.DEFAULT_MODEL, progress=print)  # fail fast, and make the first Step quick
    demo = ui.build_demo()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **ui.launch_options(),
                **ui.sessions.server_limits())  # no uploads; as many Gradio sessions as the app remembers


if __name__ == "__main__":
    main()
