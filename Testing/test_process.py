"""Cross-platform jobs: Cancel ends the whole process tree (psutil), and POSIX-only calls stay behind a check."""
from __future__ import annotations

import ast
import os
import time

import psutil

from SemanticSynthLib.bridge.process import EngineProcess
from slicer_testdata import REPO

TREE = '''
import json, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", {code!r}])
print(json.dumps({{"stage": "working", "step": 1, "total": 2, "grandchild": grandchild.pid}}), flush=True)
time.sleep(300)
'''
SLEEPER = "import time; time.sleep(300)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_tree(tmp_path, code):
    (tmp_path / "spawn_tree.py").write_text(TREE.format(code=code), encoding="utf-8")
    records = []
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process = EngineProcess(["ignored"], records.append, env=env, module="spawn_tree").start()
    deadline = time.monotonic() + 60
    while not records and time.monotonic() < deadline:
        time.sleep(0.05)
    assert records, "the child reported nothing"
    return process, records[0]["grandchild"]


def test_cancel_ends_the_child_and_its_children(tmp_path):
    process, grandchild = _start_tree(tmp_path, SLEEPER)
    child = process.process.pid
    assert psutil.Process(grandchild).ppid() == child
    process.cancel()
    assert _gone(child) and _gone(grandchild)
    assert process.cancelled and process.error_message == "cancelled"


def test_cancel_kills_what_ignores_terminate(tmp_path):
    process, grandchild = _start_tree(tmp_path, STUBBORN)
    time.sleep(0.5)  # let it install its handler
    started = time.monotonic()
    process.cancel(grace_s=0.5)
    assert _gone(grandchild) and _gone(process.process.pid)
    assert time.monotonic() - started < 10


POSIX_ONLY = {("os", "killpg"), ("os", "getpgid"), ("os", "setsid"), ("os", "setpgrp"), ("os", "fork"),
              ("signal", "SIGKILL"), ("os", "getuid")}
POSIX_ONLY_KEYWORDS = {"start_new_session", "preexec_fn"}


def _platform_check(node) -> bool:
    text = ast.unparse(node)
    return "os.name" in text or "sys.platform" in text or "platform.system" in text


def test_no_posix_only_call_outside_a_platform_check():
    """In the module and the whole library: the bridge, the web app and the engine run on every platform."""
    files = [REPO / "SemanticSynth" / "SemanticSynth.py", *sorted((REPO / "SemanticSynthLib").rglob("*.py"))]
    assert REPO / "SemanticSynthLib" / "bridge" / "process.py" in files
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

        def guarded(node):
            while node in parents:
                node = parents[node]
                if isinstance(node, (ast.If, ast.IfExp)) and _platform_check(node.test):
                    return True
            return False

        for node in ast.walk(tree):
            hit = None
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in POSIX_ONLY:
                hit = f"{node.value.id}.{node.attr}"
            elif isinstance(node, ast.keyword) and node.arg in POSIX_ONLY_KEYWORDS:
                hit = node.arg
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in POSIX_ONLY_KEYWORDS:
                hit = node.value
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("file://"):
                hit = "a hand-made file:// URI (use Path.as_uri())"
            if hit and not guarded(node):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {hit}")
    assert problems == []
