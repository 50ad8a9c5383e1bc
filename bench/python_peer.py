"""The peer: a stdlib-Python XML-RPC task server of the kind people write as a fake
(threaded SimpleXMLRPCServer over HTTP/1.1 keep-alive, tasks in a dict).
With --plain: the stdlib defaults exactly as people write them (one thread, HTTP/1.0, a
connection per call, listen backlog 5).
Usage: python3 python_peer.py PORT [--plain]"""

import sys
import threading
import uuid
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer


class Handler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class Quiet:
    def handle_error(self, request, client_address):
        # A load generator closing its connections mid-read is not news (wrk does at the end).
        pass


class Server(Quiet, ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    # The stdlib default backlog (5) drops connections at 64 clients; a fair peer has more.
    request_queue_size = 128


tasks = {}
lock = threading.Lock()


def ok(value):
    return {"Status": "Success", "Value": value}


def login_with_password(user, password, *rest):
    return ok("OpaqueRef:" + str(uuid.uuid4()))


def create(session, label, description):
    ref = "OpaqueRef:" + str(uuid.uuid4())
    with lock:
        tasks[ref] = {"uuid": str(uuid.uuid4()), "name_label": label, "name_description": description,
                      "allowed_operations": [], "current_operations": {}, "status": "pending",
                      "progress": 0.0, "type": "<none/>", "result": "", "error_info": [],
                      "other_config": {}, "subtask_of": "OpaqueRef:NULL", "subtasks": [], "backtrace": "()"}
    return ok(ref)


def get_record(session, ref):
    with lock:
        return ok(dict(tasks[ref]))


def set_progress(session, ref, value):
    with lock:
        tasks[ref]["progress"] = float(value)
    return ok("")


class PlainHandler(SimpleXMLRPCRequestHandler):
    def log_message(self, *args):
        pass


if "--plain" in sys.argv:
    class PlainServer(Quiet, SimpleXMLRPCServer):
        pass

    server = PlainServer(
        ("127.0.0.1", int(sys.argv[1])), requestHandler=PlainHandler, allow_none=True, logRequests=False
    )
else:
    server = Server(("127.0.0.1", int(sys.argv[1])), requestHandler=Handler, allow_none=True, logRequests=False)
server.register_function(login_with_password, "session.login_with_password")
server.register_function(create, "task.create")
server.register_function(get_record, "task.get_record")
server.register_function(set_progress, "task.set_progress")
server.serve_forever()
