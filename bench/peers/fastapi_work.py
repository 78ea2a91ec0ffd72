"""A FastAPI view doing the same fixed ~200 µs of pure-Python work per
request as flask_work.py, for bench/wsgi_scale.py --app fastapi:

    pyparallel serve --app-dir bench/peers --workers 2 fastapi_work:app
"""

from fastapi import FastAPI
from flask_work import work

app = FastAPI()


@app.get("/work")
async def view() -> dict[str, int]:
    return {"total": work()}
