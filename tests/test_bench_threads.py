"""bench.pipeline.threads: CPU per thread of a live process, read from /proc, named as Python names it."""

import os
import threading
import time

from bench.pipeline.threads import by_thread, thread_cpu


def test_a_busy_thread_of_this_process_is_read_with_its_cpu_and_name():
    burned, release = threading.Event(), threading.Event()

    def burn() -> None:
        end = time.thread_time() + 0.1
        while time.thread_time() < end:
            pass
        burned.set()
        release.wait(30)  # alive until read: a thread that ended is gone from /proc

    before = thread_cpu(os.getpid())
    busy = threading.Thread(target=burn, name="bench-burner")
    busy.start()
    while busy.native_id is None:
        time.sleep(0.001)
    tid = busy.native_id
    burned.wait(30)
    middle = thread_cpu(os.getpid())
    release.set()
    busy.join()
    assert tid in middle and tid not in before
    names = {os.getpid(): {tid: busy.name, threading.main_thread().native_id: "MainThread"}}
    pid = os.getpid()
    spent = by_thread([(pid, "tester")], names, {pid: before}, {pid: thread_cpu(pid) | {tid: middle[tid]}})
    assert spent["tester/bench-burner"] > 0
    assert "tester/MainThread" in spent
