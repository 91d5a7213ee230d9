# Flask hello world for `gunicorn -w 3 app:app`, with the same per-process
# response count file as the node apps: a daemon thread in each worker writes
# $BENCH_COUNT_DIR/<pid>.count every 200 ms, off the request path.
import os
import threading
import time

from flask import Flask, Response

app = Flask(__name__)
_served = 0


def _flush_forever(directory):
    path = os.path.join(directory, f"{os.getpid()}.count")
    while True:
        # write-then-rename, so the bench never reads a half-written file
        with open(path + ".tmp", "w") as f:
            f.write(str(_served))
        os.replace(path + ".tmp", path)
        time.sleep(0.2)


if os.environ.get("BENCH_COUNT_DIR"):
    threading.Thread(target=_flush_forever, args=(os.environ["BENCH_COUNT_DIR"],), daemon=True).start()


@app.route("/")
def hello():
    global _served
    _served += 1
    return Response("Hello, World!\n", mimetype="text/plain")
