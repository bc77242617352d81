"""`semanticsynth serve [--port 8080] [--host 127.0.0.1]`: start the web app (headless: VTK renders off-screen)."""
from __future__ import annotations

import os
import sys

from ..errors import SynthError

WEB_PACKAGES = "pip install 'semanticsynth[web]' (trame-slicer, slicer-layer-dm, slicer-core 5.11)"


def configure_headless() -> str:
    """Off-screen rendering without a display: with no X server VTK is told to use EGL (Mesa's libEGL, Debian
    packages libegl1 and libgl1-mesa-dri), so it does not first try X and warn. Returns the window class chosen."""
    if os.name == "posix" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return os.environ.get("VTK_DEFAULT_OPENGL_WINDOW", "default")


def create_app(max_upload_mb: float = 512, device: str | None = None):
    configure_headless()
    try:
        from trame.app import get_server

        from .app import SemanticSynthWebApp
    except ImportError as exc:
        raise SynthError(f"the web app needs the [web] extra ({exc}); install it with {WEB_PACKAGES}") from exc
    server = get_server("semanticsynth", client_type="vue3")
    return SemanticSynthWebApp(server, max_upload_mb=max_upload_mb, device=device)


def serve(*, host: str = "127.0.0.1", port: int = 8080, max_upload_mb: float = 512, device: str | None = None) -> None:
    """Serve the web app until Ctrl+C.

    Args:
        host, port: where to listen (default: this machine only).
        max_upload_mb: the largest upload accepted.
        device: where the engine runs (None: each request's default).
    """
    app = create_app(max_upload_mb, device)
    print(f"SemanticSynth web app: http://{host}:{port}/ (Ctrl+C stops it)", flush=True)
    argv = sys.argv
    sys.argv = argv[:1]  # trame parses sys.argv itself; the options are ours
    try:
        app.server.start(host=host, port=port, open_browser=False, show_connection_info=False)
    finally:
        sys.argv = argv
