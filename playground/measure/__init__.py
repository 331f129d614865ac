"""The measurement code, apart from the product: benchmarks and load generators that drive the playground, from
inside (the engine against `generate()`) and from outside, as visitors do. It imports the product; nothing in
the product imports it except the CLI's `bench` command (`python -m playground bench`).

    bench.py      the engine against `generate()`, the UI's server-side Step, loading; `--browser` adds felt.py
    felt.py       felt speed: Step, Run and a preview as a person feels them in Chromium, against the API
    classroom.py  a class of N students on one app in hosted mode (`python -m playground bench --classroom 30`)
    served.py     the app started as a server (`python app.py` on loopback) and its named API spoken over HTTP
    ui_step.py    one Step of the web UI, server-side
    batching_bench.py  visitors' forwards shared or not: steps/s and latency for N runs at once
    stats.py      paired alternating rounds, percentiles
"""
