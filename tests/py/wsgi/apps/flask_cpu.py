"""A Flask view that only computes (about 200 µs of pure Python a call): it
never blocks, so the engine should never hand its worker to another thread."""

from flask import Flask

app = Flask(__name__)


@app.route("/work")
def work() -> dict[str, int]:
    total = 0
    for i in range(3000):
        total += (i * i) % 7
    return {"total": total}
