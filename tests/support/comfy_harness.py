"""A real ComfyUI server (0.3.75 unless ``$SR4K_COMFY_TREE`` names another tree) for the tests, and a small HTTP client for it.

The tree and venv are prepared by ``scripts/test_env.sh`` into ``.cache/comfyui`` (see
``../shared/docs/comfyui-harness.md``). The server runs on loopback with only this pack (and the
test-only helper pack in ``tests/helper_pack``) whitelisted.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("SR4K_COMFY_WORK", REPO / ".cache" / "comfyui"))
# SR4K_COMFY_TREE: another ComfyUI tree, used in place (scripts/test_env.sh builds its venv under WORK).
COMFY_DIR = Path(os.environ.get("SR4K_COMFY_TREE") or WORK / "ComfyUI")
VENV_PY = WORK / "venv" / "bin" / "python"
PACK_NAME = "sr4k"
HELPER_PACK = REPO / "tests" / "helper_pack"
HELPER_PACK_NAME = "sr4k_test_helpers"

MODEL_FOLDERS = (
    "gtasr",
    "vae",
    "diffusion_models",
    "loras",
    "checkpoints",
    "upscale_models",
    "text_encoders",
)


def harness_available() -> bool:
    return (COMFY_DIR / "main.py").is_file() and VENV_PY.is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == target.resolve():
            return
        link.unlink()
    link.symlink_to(target, target_is_directory=True)


class PromptError(RuntimeError):
    """A prompt was rejected (HTTP 400) or failed at run time; ``payload`` holds the server's answer."""

    def __init__(self, message: str, payload: dict[str, Any]) -> None:
        super().__init__(message)
        self.payload = payload


@dataclass
class ComfyServer:
    """A running server plus the folders it reads and writes."""

    port: int
    proc: subprocess.Popen
    log_path: Path
    base: Path
    models: Path = field(init=False)
    input_dir: Path = field(init=False)
    output_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.models = self.base / "models"
        self.input_dir = self.base / "input"
        self.output_dir = self.base / "output"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- HTTP -------------------------------------------------------------------------------
    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read()

    def post_prompt(self, prompt: dict[str, Any]) -> str:
        body = json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode()
        req = urllib.request.Request(
            self.url + "/prompt", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["prompt_id"]
        except urllib.error.HTTPError as e:
            payload = json.loads(e.read() or b"{}")
            raise PromptError(f"prompt rejected ({e.code}): {json.dumps(payload)[:2000]}", payload) from e

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Poll ``/history`` on ``status_str`` (``completed`` stays false on error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get_json(f"/history/{prompt_id}")
            entry = hist.get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running a prompt:\n{self.log_tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s:\n{self.log_tail()}")

    def run(self, prompt: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        """Run a prompt; return its history entry, or raise :class:`PromptError` on an error."""
        entry = self.wait(self.post_prompt(prompt), timeout)
        if entry["status"]["status_str"] != "success":
            raise PromptError(f"execution failed: {execution_error(entry)}", entry)
        return entry

    def images(self, entry: dict[str, Any], node_id: str) -> list[np.ndarray]:
        """The images an output node saved, as ``[H, W, C]`` uint8 arrays (read back over HTTP)."""
        from PIL import Image

        out = []
        for img in entry["outputs"][node_id]["images"]:
            query = urllib.parse.urlencode(
                {"filename": img["filename"], "subfolder": img["subfolder"], "type": img["type"]}
            )
            out.append(np.array(Image.open(io.BytesIO(self.get_bytes(f"/view?{query}")))))
        return out

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def execution_error(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``execution_error`` message of a failed history entry (empty dict if none)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return {}


def start_server(
    base: Path, timeout: float = 180.0, env: dict[str, str] | None = None, require_pack: bool = True
) -> ComfyServer:
    """Start ComfyUI with this pack whitelisted; model/input/output folders live under ``base``. ``env``: extra
    environment variables of the server process. ``require_pack``: raise if the pack failed to import (else the
    caller reads the log)."""
    if not harness_available():
        raise RuntimeError(
            f"ComfyUI test harness missing under {WORK}; run `bash scripts/test_env.sh` first."
        )
    _link(REPO, COMFY_DIR / "custom_nodes" / PACK_NAME)
    _link(HELPER_PACK, COMFY_DIR / "custom_nodes" / HELPER_PACK_NAME)
    user = COMFY_DIR / "user" / "default"
    user.mkdir(parents=True, exist_ok=True)
    settings = user / "comfy.settings.json"
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    for sub in MODEL_FOLDERS:
        (base / "models" / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("input", "output", "temp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # Models come through extra_model_paths.yaml, the way users point ComfyUI at shared folders.
    extra = base / "extra_model_paths.yaml"
    lines = ["sr4k_tests:", f"    base_path: {base / 'models'}"] + [f"    {s}: {s}" for s in MODEL_FOLDERS]
    extra.write_text("\n".join(lines) + "\n")
    port = free_port()
    log_path = base / "server.log"
    log = open(log_path, "w")
    cmd = [
        str(VENV_PY),
        "main.py",
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-api-nodes",
        "--disable-all-custom-nodes",
        "--whitelist-custom-nodes",
        PACK_NAME,
        HELPER_PACK_NAME,
        "--extra-model-paths-config",
        str(extra),
        "--input-directory",
        str(base / "input"),
        "--output-directory",
        str(base / "output"),
        "--temp-directory",
        str(base / "temp"),
        "--database-url",
        "sqlite:///:memory:",
        "--cache-none",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=COMFY_DIR, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = ComfyServer(port=port, proc=proc, log_path=log_path, base=base)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited during start-up:\n{server.log_tail()}")
        try:
            server.get_json("/system_stats")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                stop_server(server)
                raise TimeoutError(f"ComfyUI not ready after {timeout} s:\n{server.log_tail()}") from None
            time.sleep(0.2)
    failed = [
        ln for ln in log_path.read_text().splitlines() if "IMPORT FAILED" in ln and "custom_nodes" in ln
    ]
    if failed and require_pack:
        stop_server(server)
        raise RuntimeError("the pack failed to import:\n" + "\n".join(failed) + "\n" + server.log_tail(80))
    return server


def stop_server(server: ComfyServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)
