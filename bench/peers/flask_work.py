"""A Flask view doing a fixed amount of pure-Python CPU work per request
(about 200 µs on this machine's CPython 3.11 and 3.13t), for
bench/wsgi_scale.py: what a real view's Python costs, without sleeping.

    pyparallel serve --app-dir bench/peers --workers 2 flask_work:app
"""

from flask import Flask

ITERATIONS = 3000  # ~200 µs of work() per call; bench/wsgi_scale.py prints the figure


def work(n: int = ITERATIONS) -> int:
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


EXPECTED = work()

app = Flask(__name__)


@app.route("/work")
def view() -> dict[str, int]:
    return {"total": work()}
