"""The small HTTP servers (worker metrics, dashboard) against clients that never finish."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

from pipeline.monitoring.http import TEXT, HttpServer


def half_request(port: int) -> socket.socket:
    """A connection that sends the start of a request and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while data := sock.recv(4096):
            if data.startswith(b"HTTP/1.") and b" 503 " in data.split(b"\r\n", 1)[0]:
                continue  # refused with 503: the server closes right after
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_half_sent_requests_time_out_and_at_most_max_connections_hold_a_thread():
    server = HttpServer("127.0.0.1", 0, {"/healthz": lambda q: (200, TEXT, b"ok\n")}, name="test",
                        read_timeout_s=1.0, max_connections=4)
    threads_before = threading.active_count()
    try:
        held = [half_request(server.port) for _ in range(30)]
        deadline = time.monotonic() + 5
        while server.server.refused < 26 and time.monotonic() < deadline:
            time.sleep(0.05)
        # 4 connections are being read, every other one was answered 503 and closed
        assert threading.active_count() - threads_before <= 4
        assert server.server.refused == 26
        refused = [sock for sock in held[4:] if closed_by_server(sock, 2.0)]
        assert len(refused) == 26
        # the 4 half-sent requests are closed after the read time-out, and their threads end
        assert all(closed_by_server(sock, 3.0) for sock in held[:4])
        deadline = time.monotonic() + 3
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == threads_before
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as answer:
            assert answer.read() == b"ok\n"
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_a_full_server_answers_503_and_serves_again_when_a_slot_frees():
    server = HttpServer("127.0.0.1", 0, {"/healthz": lambda q: (200, TEXT, b"ok\n")}, name="test",
                        read_timeout_s=5.0, max_connections=1)
    try:
        hog = half_request(server.port)
        time.sleep(0.2)
        try:
            urllib.request.urlopen(f"{server.url}/healthz", timeout=5)
            raise AssertionError("a full server served another connection")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        hog.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as answer:
                    assert answer.read() == b"ok\n"
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        server.close()
