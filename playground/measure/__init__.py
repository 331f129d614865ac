"""The measurement code, apart from the product: the benchmark (`bench`: the engine against `generate()`, the
UI's server-side Step, loading), felt speed in a real browser (`felt`), the server-side Step of the web UI
(`ui_step`) and the statistics they share (`stats`).

It imports the product (the engine, the web app); nothing in the product imports it except the CLI's `bench`
command (`python -m playground bench`).
"""
