"""Start a mongoeco wire server for blogql's tier-2 MongoDB tests.

mongoeco is a pure-Python MongoDB wire server with sessions and
transactions. This launcher runs it on a loopback port with the in-memory
engine and shims the gaps between it and the Rust driver. Each shim is
listed below with the reason it exists:

1. Cursor ids: the Rust driver requires `cursor.id` to be an Int64; mongoeco
   replies with small Python ints, which BSON encodes as Int32.
2. Int64 arguments: the Rust driver sends `limit`, `skip` and `batchSize`
   (and `getMore`/`killCursors` cursor ids) as Int64; mongoeco decodes those
   to its own Int64 wrapper, which its argument validation rejects.
3. Topology: mongoeco's `hello` reports a standalone server, yet it runs
   transactions, which no real standalone does. Production connects to a
   replica set (`?replicaSet=rs0`), so the shim adds the fields of a
   single-node replica set (`setName: rs0`, `hosts`, `primary`, `me`) and
   the driver runs its replica-set discovery and monitoring as it would in
   production.
   `--standalone` instead makes mongoeco behave like a real standalone
   mongod: commands that carry a transaction number are refused with code
   20 and the server's own message, so tests can check how blogql reacts to
   a deployment without transactions.
4. Error codes: some mongoeco error replies carry only `errmsg`. Real servers
   always send a numeric `code`, and the Rust driver cannot parse an error
   reply without one (it reports an "invalid reply" instead of the error).
   The shim adds `code: 8` (UnknownError) where it is missing.
5. Write conflicts: mongoeco's memory engine is serializable with one global
   version: a transaction with writes fails at commit if any other
   transaction committed since it started. It reports that as a bare
   "Write conflict during transaction commit". A real server reports a
   conflict as code 112 (WriteConflict) labelled `TransientTransactionError`,
   which is what tells a driver's transaction API to run the transaction
   again. The shim gives the reply that code and label.
6. Retry after a conflict: when that commit fails, mongoeco keeps the failed
   transaction's pending writes attached to the session, so the retried
   transaction on the same session (which is how drivers retry) sees its
   own earlier writes, e.g. a duplicate-key error on the row it is
   inserting again. A real server discards a failed transaction. The shim
   aborts the session's transaction when its commit conflicts.

Usage: python mongoeco_server.py [--port N] [--port-file PATH] [--standalone]
It prints `mongoeco listening on 127.0.0.1:PORT` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from mongoeco.core.bson_scalars import BsonInt64
from mongoeco.engines.memory import MemoryEngine
from mongoeco.errors import OperationFailure
from mongoeco.session import ClientSession as MongoEcoSession
from mongoeco.wire import AsyncMongoEcoProxyServer
from mongoeco.wire import executor as wire_executor
from mongoeco.wire import handshake as wire_handshake

REPLICA_SET = "rs0"
INT64_ARGUMENTS = ("limit", "skip", "batchSize", "getMore")


def plain_int(value):
    return int(value.value) if isinstance(value, BsonInt64) else value


def shim_int64_arguments() -> None:
    """Shim 2: turn Int64 arguments into plain ints before mongoeco validates them."""
    original = wire_executor.build_request_context

    def build_request_context(body, **kwargs):
        if isinstance(body, dict):
            body = dict(body)
            for key in INT64_ARGUMENTS:
                if key in body:
                    body[key] = plain_int(body[key])
            if isinstance(body.get("cursors"), list):
                body["cursors"] = [plain_int(c) for c in body["cursors"]]
        return original(body, **kwargs)

    wire_executor.build_request_context = build_request_context


def shim_refuse_transactions() -> None:
    """Shim 3, --standalone: refuse transactions the way a standalone mongod does."""
    original = wire_executor.build_request_context

    def build_request_context(body, **kwargs):
        if isinstance(body, dict) and "txnNumber" in body:
            raise OperationFailure(
                "Transaction numbers are only allowed on a replica set member or mongos", code=20
            )
        return original(body, **kwargs)

    wire_executor.build_request_context = build_request_context


def shim_cursor_ids() -> None:
    """Shim 1: reply with Int64 cursor ids, as real servers do."""
    original = wire_executor.WireCommandExecutor.execute_prepared

    async def execute_prepared(self, context):
        result = await original(self, context)
        cursor = result.get("cursor") if isinstance(result, dict) else None
        if isinstance(cursor, dict) and isinstance(cursor.get("id"), int):
            cursor["id"] = BsonInt64(cursor["id"])
        return result

    wire_executor.WireCommandExecutor.execute_prepared = execute_prepared


def shim_error_codes() -> None:
    """Shims 4 and 5: every error reply carries a numeric code; conflicts are transient WriteConflicts."""
    original = wire_executor.WireCommandExecutor.error_document

    def error_document(exc):
        document = original(exc)
        if isinstance(document, dict) and "Write conflict" in str(document.get("errmsg", "")):
            document["code"] = 112
            document["codeName"] = "WriteConflict"
            labels = list(document.get("errorLabels", []))
            if "TransientTransactionError" not in labels:
                labels.append("TransientTransactionError")
            document["errorLabels"] = labels
        if isinstance(document, dict) and "code" not in document:
            document["code"] = 8
            document.setdefault("codeName", "UnknownError")
        return document

    wire_executor.WireCommandExecutor.error_document = staticmethod(error_document)


def shim_discard_failed_commit() -> None:
    """Shim 6: a commit that conflicts is aborted, so the session starts the retry clean."""
    original = MongoEcoSession.commit_transaction

    def commit_transaction(self):
        try:
            return original(self)
        except OperationFailure as exc:
            if "Write conflict" in str(exc) and self.transaction_active:
                self.abort_transaction()
            raise

    MongoEcoSession.commit_transaction = commit_transaction


def shim_replica_set(address: str) -> None:
    """Shim 3: describe the server as the primary of a one-node replica set."""
    original = wire_handshake.WireHandshakeService.build_hello_response

    def build_hello_response(self, **kwargs):
        response = original(self, **kwargs)
        response.update(
            {
                "setName": REPLICA_SET,
                "setVersion": 1,
                "hosts": [address],
                "primary": address,
                "me": address,
                "secondary": False,
            }
        )
        return response

    wire_handshake.WireHandshakeService.build_hello_response = build_hello_response


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free one)")
    parser.add_argument("--port-file", help="write the chosen port to this file once listening")
    parser.add_argument("--standalone", action="store_true", help="do not pretend to be a replica set")
    args = parser.parse_args()

    shim_int64_arguments()
    shim_cursor_ids()
    shim_error_codes()
    shim_discard_failed_commit()
    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=args.port)
    address = await server.start()
    host_port = f"{address.host}:{address.port}"
    if args.standalone:
        shim_refuse_transactions()
    else:
        shim_replica_set(host_port)
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as f:
            f.write(str(address.port))
    print(f"mongoeco listening on {host_port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
