"""A Flask API for proxy/differential_test.go.

Each route answers with its name and the method it ran for. The WSGI
middleware is the one Flask's documentation gives under "Adding HTTP Method
Overrides". Prints "PORT n" once it listens on a loopback port of its own
choosing.
"""
import sys

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

app = Flask(__name__, static_folder=None)


def served(route):
    return jsonify(upstream="flask", route=route, method=request.method, path=request.path)


@app.route("/static/", methods=["GET"])
@app.route("/static/<path:rest>", methods=["GET"])
def static_files(rest=None):
    return served("static")


@app.route("/status", methods=["GET"])
def status():
    return served("status")


@app.route("/admin/", methods=ALL)
@app.route("/admin/<path:rest>", methods=ALL)
def admin(rest=None):
    return served("admin")


@app.route("/api/users/<id>", methods=["DELETE"])
def users_delete(id):
    return served("users_delete")


@app.route("/api/users/<id>", methods=["GET"])
def users_get(id):
    return served("users_get")


@app.route("/", methods=ALL)
@app.route("/<path:rest>", methods=ALL)
def unmatched(rest=None):
    return served("unmatched")


class HTTPMethodOverrideMiddleware:
    """From Flask's documentation (patterns/methodoverrides)."""

    allowed_methods = frozenset(ALL)
    bodyless_methods = frozenset(["GET", "HEAD", "OPTIONS", "DELETE"])

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        if method in self.allowed_methods:
            environ["REQUEST_METHOD"] = method
        if method in self.bodyless_methods:
            environ["CONTENT_LENGTH"] = "0"
        return self.app(environ, start_response)


app.wsgi_app = HTTPMethodOverrideMiddleware(app.wsgi_app)

if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print("PORT %d" % server.server_port, flush=True)
    server.serve_forever()
