"""The measurement code, apart from the product: benchmarks and load generators that drive the playground from
outside, as visitors do. Nothing in the product imports this package except the CLI's `bench` command.

    served.py     the app started as a server (`python app.py` on loopback) and its named API spoken over HTTP
    classroom.py  a class of N students on one app in hosted mode (`python -m playground bench --classroom 30`)
"""
