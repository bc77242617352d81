"""The web app (`semanticsynth serve`) in a real browser: Debian's Chromium driven by Selenium.

Nothing is downloaded at run time: the browser and its driver are the Debian packages `chromium` and
`chromium-driver` (scripts/setup.sh installs them). Without them these tests fail, naming the package.
Everything is checked from the page: texts the page shows and screenshots of its slice views.

Artifacts (screenshots, timings.json) go to $SEMANTICSYNTH_ARTIFACTS/web, default outputs/test-artifacts/web.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
ARTIFACTS = Path(os.environ.get("SEMANTICSYNTH_ARTIFACTS", REPO / "outputs" / "test-artifacts")) / "web"
DOWNLOADS = ARTIFACTS / "downloads"
UPLOAD_LIMIT_MB = 0.5
# DDIM steps of the timed generation: 2 keeps the suite short; "" (the model's default) for the README picture
STEPS = os.environ.get("SEMANTICSYNTH_WEB_TEST_STEPS", "2")
TEMPERATURE = "0.7"  # set in the Advanced panel with the phase; the provenance must record both
CHROMIUM = {"chromium": "chromium", "chromedriver": "chromium-driver"}  # executable -> Debian package


def _require(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        pytest.fail(f"Python package {package} is missing: install the web extra with "
                    f"`.venv/bin/pip install -e '.[web]'` (or run `bash scripts/setup.sh`)", pytrace=False)


def browser_executables(path: str | None = None) -> tuple[dict[str, str], str | None]:
    """Chromium and its driver on PATH (or on `path`), and, when one is missing, the one line naming its Debian
    package. Only PATH is searched, so a machine without the packages is seen as it is."""
    found, missing = {}, []
    for exe, package in CHROMIUM.items():
        found[exe] = shutil.which(exe, path=path)
        if found[exe] is None:
            missing.append(package)
    if not missing:
        return found, None
    return found, (f"the browser test needs Debian's {' and '.join(missing)}: install with "
                   f"`apt-get install -y {' '.join(missing)}` (or run `bash scripts/setup.sh`)")


@pytest.fixture(scope="module")
def chromium() -> dict[str, str]:
    """Before the server starts: without the browser the test fails at once, naming the package; it never skips."""
    found, missing = browser_executables()
    if missing:
        pytest.fail(missing, pytrace=False)
    return found


def _server_env() -> dict[str, str]:
    """The server's environment, and the timed CLI's: the same threads for both."""
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def _assert_same_volume(a: Path, b: Path):
    import SimpleITK as sitk

    first, second = sitk.ReadImage(str(a)), sitk.ReadImage(str(b))
    assert first.GetSize() == second.GetSize()
    assert np.allclose(first.GetSpacing(), second.GetSpacing(), atol=1e-5)
    assert np.allclose(first.GetOrigin(), second.GetOrigin(), atol=1e-3)
    assert np.allclose(first.GetDirection(), second.GetDirection(), atol=1e-5)
    difference = np.abs(sitk.GetArrayViewFromImage(first).astype(float) - sitk.GetArrayViewFromImage(second))
    print(f"page against CLI: mean |difference| {difference.mean():.3g}, largest {difference.max():.3g}")
    assert difference.max() < 1.0  # one engine, one seed: the same voxels (bit for bit here), not just alike


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    _require("trame_slicer", "trame-slicer")
    port = _free_port()
    env = _server_env()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "server.log", "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "SemanticSynthLib", "serve", "--port", str(port),
                             "--max-upload-mb", str(UPLOAD_LIMIT_MB)], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, f"the server exited with status {proc.returncode}; see {log.name}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the server did not listen within 120 s")
    yield {"url": url, "process": proc, "port": port}
    from SemanticSynthLib.bridge.process import kill_tree

    kill_tree(proc)
    log.close()


@pytest.fixture(scope="module")
def browser(chromium, server):
    exes = chromium
    _require("selenium", "selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = exes["chromium"]
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for old in DOWNLOADS.iterdir():
        old.unlink()
    options.add_experimental_option("prefs", {"download.default_directory": str(DOWNLOADS),
                                              "download.prompt_for_download": False})
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(exes["chromedriver"]), options=options)
    driver.get(server["url"])
    _wait(driver, lambda: "Load a label map" in _text(driver, "status"), 60, "the page did not come up")
    yield driver
    driver.quit()


# ------------------------------------------------------------------ page helpers
def _text(driver, element_id: str) -> str:
    """The element's text; the page re-renders elements as its state changes, so an element replaced between
    finding and reading it is looked up again (a few times) rather than failing the test."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            found = driver.find_elements(By.ID, element_id)
            return found[0].text if found else ""
        except StaleElementReferenceException:
            time.sleep(0.05)
    return ""


def _wait(driver, condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{what} (after {timeout:.0f} s); status: {_text(driver, 'status')!r}, message: {_text(driver, 'message')!r}")


def _wait_for_job(driver, condition, timeout: float, what: str):
    """Wait for a job's end as `condition` sees it; a job that failed (status "Failed", the reason in the message)
    fails the test at once instead of after the whole timeout."""
    def done():
        if _text(driver, "status") == "Failed":
            pytest.fail(f"{what}: the job failed: {_text(driver, 'message')!r}", pytrace=False)
        return condition()

    return _wait(driver, done, timeout, what)


def _click(driver, element_id: str):
    """Click an element of the controls column, scrolled into view first (the open Advanced panel and the edit
    controls lengthen it; the column's scroll padding keeps it clear of the page's footer)."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", element)
    element.click()


def _axial_view(driver) -> np.ndarray:
    """The axial (red) slice view, top-left quarter of the views area, as RGB pixels from a screenshot."""
    from io import BytesIO

    from PIL import Image
    from selenium.webdriver.common.by import By

    views = driver.find_element(By.ID, "views").rect
    image = np.asarray(Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")).astype(float)
    scale = image.shape[1] / driver.execute_script("return window.innerWidth")
    x0, y0 = int(views["x"] * scale), int(views["y"] * scale)
    w, h = int(views["width"] * scale / 2), int(views["height"] * scale / 2)
    margin = int(30 * scale)  # the view's own buttons and slider
    return image[y0 + margin:y0 + h - margin, x0 + margin:x0 + w - margin]


def _colour(pixels: np.ndarray) -> float:
    """How far from grey a view is: the mean spread of each pixel's R, G and B (0 for a grey volume)."""
    return float((pixels.max(axis=-1) - pixels.min(axis=-1)).mean())


def _scene_nodes(driver) -> list[str]:
    return [line for line in _text(driver, "scene-nodes").splitlines() if line.strip()]


def _set_field(driver, element_id: str, value: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, f"input#{element_id}, #{element_id} input")
    driver.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", field)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(value)


def _choose(driver, element_id: str, title: str):
    """Pick the item titled `title` from a Vuetify select: open its menu (an overlay), click the item."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"input#{element_id}, #{element_id} input")
    field.find_element(By.XPATH, "./ancestor::div[contains(@class, 'v-field')][1]").click()
    items = _wait(driver, lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, ".v-overlay--active .v-list-item")
                                   if e.text.strip() == title], 10, f"no item {title!r} in the {element_id} menu")
    items[0].click()
    _wait(driver, lambda: not driver.find_elements(By.CSS_SELECTOR, ".v-overlay--active .v-list-item"), 10,
          f"the {element_id} menu did not close")


def _advanced_panel(driver, open_it: bool):
    """Open (or close) the Advanced panel; closed, the controls column is as short as before it was added."""
    from selenium.webdriver.common.by import By

    def is_open():
        return bool(driver.find_elements(By.CSS_SELECTOR, "#advanced .v-expansion-panel--active"))

    if is_open() != open_it:
        _click(driver, "advanced-title")
    _wait(driver, lambda: is_open() == open_it and bool(driver.find_elements(
        By.CSS_SELECTOR, "input#temperature, #temperature input")) == open_it, 10, "the Advanced panel did not toggle")


def _stable_view(driver, timeout: float = 20) -> np.ndarray:
    """The axial view once two screenshots 0.5 s apart agree (the remote view has finished rendering)."""
    previous = _axial_view(driver)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        current = _axial_view(driver)
        if current.shape == previous.shape and np.abs(current - previous).mean() < 0.5:
            return current
        previous = current
    return previous


def _save(driver, name: str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def _load_sample(driver):
    from selenium.webdriver.common.by import By

    if _text(driver, "source-name") != SAMPLE.name.replace(".nii.gz", ""):
        _click(driver, "load-sample")
        _wait(driver, lambda: _text(driver, "status").startswith("Loaded"), 60, "the sample did not load")
    assert driver.find_elements(By.ID, "message") == []


# ------------------------------------------------------------------ tests
def test_listens_on_localhost_only(server):
    import psutil

    addresses = {c.laddr.ip for c in psutil.Process(server["process"].pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
    assert addresses == {"127.0.0.1"}


def test_missing_browser_names_the_package(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _, message = browser_executables(str(bin_dir))
    assert message.startswith("the browser test needs Debian's chromium and chromium-driver: ")
    assert "apt-get install -y chromium chromium-driver" in message and "\n" not in message
    real, _ = browser_executables()
    (bin_dir / "chromium").symlink_to(real["chromium"])  # the browser without its driver
    _, message = browser_executables(str(bin_dir))
    assert message.startswith("the browser test needs Debian's chromium-driver: ")
    (bin_dir / "chromedriver").symlink_to(real["chromedriver"])
    assert browser_executables(str(bin_dir)) == ({"chromium": str(bin_dir / "chromium"),
                                                   "chromedriver": str(bin_dir / "chromedriver")}, None)

    # the browser test itself, in a child pytest on a PATH without the browser: it fails (pytest's "error at setup",
    # exit status 1) with the one line, and is not skipped
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty), SEMANTICSYNTH_ARTIFACTS=str(tmp_path / "artifacts"))
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
                            f"{Path(__file__).relative_to(REPO)}::test_generate_shows_the_volume"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 1, child.stdout[-2000:]
    assert "ERROR at setup of test_generate_shows_the_volume" in child.stdout and "1 error in" in child.stdout
    assert "skipped" not in child.stdout
    assert ("the browser test needs Debian's chromium and chromium-driver: install with "
            "`apt-get install -y chromium chromium-driver`") in child.stdout
    assert not (tmp_path / "artifacts" / "web" / "server.log").exists(), "the server started without a browser"


def test_generate_shows_the_volume(browser):
    driver = browser
    _load_sample(driver)
    labels = _stable_view(driver)
    assert labels.std() > 10, "the label view is blank"
    _save(driver, "labels.png")
    before = _scene_nodes(driver)

    _set_field(driver, "steps", STEPS)
    # Advanced: the contrast phase and the temperature, which must reach the engine (checked in the provenance)
    _advanced_panel(driver, True)
    _choose(driver, "phase", "portal_venous")
    _set_field(driver, "temperature", TEMPERATURE)
    _save(driver, "advanced.png")
    _advanced_panel(driver, False)
    _click(driver, "generate")
    start = time.perf_counter()
    _wait_for_job(driver, lambda: _text(driver, "status").startswith("Generated"), 600, "generation did not finish")
    # on screen: the axial view no longer shows the labels
    _wait(driver, lambda: np.abs(_axial_view(driver) - labels).mean() > 5, 60, "the generated volume did not appear",
          interval=0.1)
    elapsed = time.perf_counter() - start
    generated = _stable_view(driver)
    _save(driver, "generated.png")

    assert generated.std() > 10, "the slice view is blank after generation"
    grey = np.abs(generated[..., 0] - generated[..., 1]).mean() + np.abs(generated[..., 1] - generated[..., 2]).mean()
    assert np.abs(generated - labels).mean() > 5 and abs(generated.mean() - labels.mean()) + abs(generated.std() - labels.std()) > 2
    assert grey < 15, "the generated CT should be grey with coloured outlines only"
    after = _scene_nodes(driver)
    assert len(after) == len(before) + 1 and any("synthetic CT" in n for n in after)

    # flip back to the labels and forth again
    _click(driver, "view-labels")
    flipped = _stable_view(driver)
    assert np.abs(flipped - labels).mean() < np.abs(flipped - generated).mean()
    _click(driver, "view-generated")
    _stable_view(driver)

    # the download: the volume as NRRD with its provenance
    _click(driver, "download-generated")
    archive = DOWNLOADS / "semanticsynth-generated.zip"
    _wait(driver, archive.exists, 30, "the download did not arrive")
    time.sleep(0.5)
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["generated.nrrd", "provenance.json"]
        meta = json.loads(z.read("provenance.json"))
        assert meta["model"] and meta["seed"] == "0" and meta["steps"] == (STEPS or meta["steps"]) and meta["modality"] == "ct"
        request = json.loads(meta["request"])  # the resolved request the engine ran
        assert request["phase"] == "portal_venous" and request["temperature"] == float(TEMPERATURE)
        assert meta["temperature"] == TEMPERATURE and request["calibrate"] is True
        assert meta["source"] == SAMPLE.name.replace(".nii.gz", "")
        assert z.getinfo("generated.nrrd").file_size > 100_000
        z.extract("generated.nrrd", DOWNLOADS)

    # the calibration check's flags, as recorded on the volume, are what the page shows under the progress bar
    flagged = json.loads(meta.get("calibration") or "{}").get("outside_prior_range") or []
    report = _text(driver, "report")
    if flagged:
        assert f"Calibration check: {len(flagged)} label(s) came out outside their prior range" in report, report
        assert all(f["name"] in report for f in flagged[:8]), report
    else:
        assert "Calibration check" not in report, report

    # the CLI on the same input, model, steps, seed, phase and temperature: its time beside the page's, and the same
    # volume (one engine)
    cli_out = DOWNLOADS / "cli-generated.nrrd"
    command = [sys.executable, "-m", "SemanticSynthLib", "generate", str(SAMPLE), str(cli_out), "--model", meta["model"],
               "--modality", "ct", "--seed", "0", "--steps", meta["steps"], "--phase", "portal_venous",
               "--temperature", TEMPERATURE, "--progress", "none", "--overwrite"]
    start = time.perf_counter()
    cli = subprocess.run(command, cwd=REPO, env=_server_env(), capture_output=True, text=True, timeout=900)
    cli_elapsed = time.perf_counter() - start
    assert cli.returncode == 0, cli.stderr[-2000:]
    _assert_same_volume(DOWNLOADS / "generated.nrrd", cli_out)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings = ARTIFACTS / "timings.json"
    data = json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else {}
    data[f"steps_{meta['steps']}"] = {"browser_generate_to_screen_s": round(elapsed, 2), "cli_generate_s": round(cli_elapsed, 2),
                                      "model": meta["model"], "seed": 0, "omp_num_threads": _server_env()["OMP_NUM_THREADS"],
                                      "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}
    data["input"] = str(SAMPLE.relative_to(REPO))
    timings.write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"Generate click to volume on screen: {elapsed:.1f} s; CLI: {cli_elapsed:.1f} s (steps: {meta['steps']})")


def test_cancel_adds_nothing(browser):
    driver = browser
    _load_sample(driver)
    before = _scene_nodes(driver)
    view_before = _stable_view(driver)
    _set_field(driver, "steps", "200")
    _click(driver, "generate")
    _wait_for_job(driver, lambda: any(w in _text(driver, "status") for w in ("Denoising", "Decoding", "Preparing", "about")),
                  300, "no progress was shown")
    _click(driver, "cancel")
    _wait(driver, lambda: _text(driver, "status") == "Cancelled; nothing was added", 60, "cancel did not end the run")
    assert _scene_nodes(driver) == before
    assert np.abs(_stable_view(driver) - view_before).mean() < 2
    assert not [p for p in Path("/tmp").glob("SemanticSynth-*") if p.is_dir() and time.time() - p.stat().st_mtime < 5]


def _write(path: Path, array: np.ndarray) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 1.5))
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("case, expected", [
    ("unreadable", "cannot read broken_upload"),
    ("2d", "is a 2D image"),
    ("unknown", "no label of unknown_labels is known to model abdomen-ct"),
    ("empty", "empty_labels is empty"),
    ("too_large", "over the upload limit of 0.5 MB"),
])
def test_bad_uploads_give_one_line(browser, tmp_path, case, expected):
    from selenium.webdriver.common.by import By

    driver = browser
    _load_sample(driver)
    before = _scene_nodes(driver)
    status = _text(driver, "status")
    if case == "unreadable":
        path = tmp_path / "broken_upload.nii.gz"
        path.write_bytes(b"this is not an image" * 50)
    elif case == "2d":
        path = _write(tmp_path / "flat_labels.nii.gz", np.ones((1, 40, 40), np.uint8))
    elif case == "unknown":
        path = _write(tmp_path / "unknown_labels.nii.gz", np.pad(np.full((8, 8, 8), 999, np.uint16), 4))
    elif case == "empty":
        path = _write(tmp_path / "empty_labels.nii.gz", np.zeros((16, 16, 16), np.uint8))
    else:
        path = tmp_path / "huge_labels.nii.gz"
        path.write_bytes(np.random.default_rng(0).bytes(int(0.6 * 2 ** 20)))
    upload = driver.find_element(By.CSS_SELECTOR, "input#upload-labels, #upload-labels input[type=file]")
    upload.send_keys(str(path))
    message = _wait(driver, lambda: _text(driver, "message"), 30, f"no message for the {case} upload")
    assert expected in message, message
    assert "\n" not in message.strip() and "Traceback" not in message
    assert _scene_nodes(driver) == before, "a refused upload changed the scene"
    assert _text(driver, "status") == status
    driver.find_element(By.CSS_SELECTOR, "#message button").click()
    _wait(driver, lambda: not _text(driver, "message"), 10, "the message did not close")
    driver.execute_script("arguments[0].value = ''", upload)  # the next upload of a file fires a change again


def test_translate_shows_volume_and_field(browser, tmp_path):
    import SimpleITK as sitk
    from selenium.webdriver.common.by import By
    from testdata import IXI_IDS, crop_case

    driver = browser
    t1, _ = crop_case(IXI_IDS[0], 48)
    path = tmp_path / "t1_crop.nii.gz"
    sitk.WriteImage(t1, str(path))
    before = _scene_nodes(driver)
    driver.find_element(By.CSS_SELECTOR, "input#upload-volume, #upload-volume input[type=file]").send_keys(str(path))
    _wait(driver, lambda: _text(driver, "status") == "Loaded volume t1_crop", 60, "the volume did not load")
    source = _stable_view(driver)
    assert source.std() > 10
    _set_field(driver, "steps", "2")
    _click(driver, "translate")
    _wait_for_job(driver, lambda: _text(driver, "status").startswith("Translated"), 600, "translation did not finish")
    _wait(driver, lambda: np.abs(_axial_view(driver) - source).mean() > 3, 60, "the translated volume did not appear")
    after = _scene_nodes(driver)
    assert len(after) == len(before) + 4  # source, translated volume, displacement field, its magnitude
    assert any(n.endswith("T2-like") for n in after) and any(n.endswith("T2-like field") for n in after)
    assert any(n.endswith("T2-like field magnitude (mm)") for n in after)

    # the field: its magnitude as a colour layer over the grey translated volume, with a legend in mm
    legend = _wait(driver, lambda: _text(driver, "field-legend"), 30, "no legend for the field")
    largest = float(re.search(r"max ([0-9.]+) mm", legend).group(1))
    assert largest > 0.1, legend
    with_field = _stable_view(driver)
    _save(driver, "translated.png")
    _click(driver, "show-field")
    _wait(driver, lambda: np.abs(_axial_view(driver) - with_field).mean() > 3, 30, "the field overlay did not go away")
    without_field = _stable_view(driver)
    assert not _text(driver, "field-legend")
    assert _colour(without_field) < 3, "the translated volume alone should be grey"
    assert _colour(with_field) > _colour(without_field) + 10, "the field overlay is not coloured"
    _click(driver, "show-field")
    _wait(driver, lambda: np.abs(_axial_view(driver) - with_field).mean() < 2, 30, "the field overlay did not come back")
    _click(driver, "download-translation")
    archive = DOWNLOADS / "semanticsynth-translation.zip"
    _wait(driver, archive.exists, 30, "the download did not arrive")
    time.sleep(0.5)
    with zipfile.ZipFile(archive) as z:
        assert {"translated.nrrd", "field.nrrd", "provenance.json"} <= set(z.namelist())
        meta = json.loads(z.read("provenance.json"))
        assert meta["source"] == "t1_crop" and meta["steps"] == "2" and meta["deform"] == "True"


def test_advanced_options_become_request_options(tmp_path):
    """The Advanced panel's values, as the page holds them (text fields as typed), are the request's options; the
    request checks them in one line. No browser: bridge.generate_logic.gui_options is what generate() hands on."""
    from SemanticSynthLib.bridge.generate_logic import TRAINING_DATA_PHASE, generation_request, gui_options
    from SemanticSynthLib.errors import SynthError

    priors = tmp_path / "priors.json"
    priors.write_text('{"liver": 100}', encoding="utf-8")
    page = {"modality": "ct", "phase": "portal_venous", "temperature": " 0.7", "guidance": "", "calibrate": False,
            "texture": False, "unknown_labels": "error", "device": "cpu", "priors": str(priors)}
    options = gui_options(page, auto_device="cuda")
    assert options == {"phase": "portal_venous", "temperature": "0.7", "guidance": None, "priors": str(priors),
                       "calibrate": False, "texture": False, "unknown_labels": "error", "device": "cpu"}
    request = generation_request("abdomen-ct", **options)
    assert (request.phase, request.temperature, request.guidance, request.calibrate, request.texture,
            request.unknown_labels, request.device, request.priors) == ("portal_venous", 0.7, None, False, False, "error",
                                                                        "cpu", str(priors))
    # the page's "auto" keeps the server's device (serve --device), or the engine's auto without one
    assert gui_options({**page, "device": "auto"}, auto_device="cuda")["device"] == "cuda"
    assert generation_request("abdomen-ct", **gui_options({**page, "device": "auto"})).device == "auto"
    # the training data's phase, and a phase for a modality without phases, are left to the model
    assert gui_options({**page, "phase": TRAINING_DATA_PHASE})["phase"] is None
    assert gui_options({**page, "modality": "mri"})["phase"] is None
    for key, value, reason in (("temperature", "2", "at most 1"), ("temperature", "warm", "not a number"),
                               ("guidance", "0.5", "at least 1"), ("priors", str(tmp_path / "gone.json"), "does not exist")):
        with pytest.raises(SynthError) as error:
            generation_request("abdomen-ct", **gui_options({**page, key: value}))
        assert key in str(error.value) and reason in str(error.value) and "\n" not in str(error.value)


def test_priors_upload_is_checked_kept_and_cleared(browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    _advanced_panel(driver, True)
    upload = driver.find_element(By.CSS_SELECTOR, "input#upload-priors, #upload-priors input[type=file]")
    bad = tmp_path / "broken_priors.json"
    bad.write_text("{liver: 100", encoding="utf-8")
    upload.send_keys(str(bad))
    message = _wait(driver, lambda: _text(driver, "message"), 30, "no message for a priors file that is not JSON")
    assert message.startswith("cannot read broken_priors.json: JSONDecodeError") and "\n" not in message.strip()
    assert not _text(driver, "priors-name")
    driver.find_element(By.CSS_SELECTOR, "#message button").click()
    driver.execute_script("arguments[0].value = ''", upload)
    good = tmp_path / "my_priors.json"
    good.write_text('{"liver": {"mean": 100, "range": [80, 120]}}', encoding="utf-8")
    upload.send_keys(str(good))
    _wait(driver, lambda: _text(driver, "priors-name") == "Priors: my_priors.json", 30, "the priors file was not taken")
    assert not _text(driver, "message")
    _click(driver, "clear-priors")
    _wait(driver, lambda: not _text(driver, "priors-name"), 10, "the priors file was not cleared")
    driver.execute_script("arguments[0].value = ''", upload)
    _advanced_panel(driver, False)


# ------------------------------------------------------------------ issue 35: edited region and uncertainty
SPLEEN, LIVER, STOMACH = 1, 5, 6  # TotalSegmentator v2 ids of the sample map
MARGIN_MM = 6.0  # the page's default margin, as typed into it below


def _edited_copy(labels: np.ndarray, reference, path: Path, *, grow: int | None = None,
                 sphere: tuple[int, int, float] | None = None) -> np.ndarray:
    """A copy of the map with one organ grown by a voxel into the unlabelled voxels around it (grow: its id), or a sphere
    of one organ relabelled (sphere: (organ, new id, radius in voxels) at the organ's centre); written on the
    reference's grid. Returns the new labels (z, y, x)."""
    import SimpleITK as sitk
    from scipy import ndimage

    edited = labels.copy()
    if grow is not None:
        edited[ndimage.binary_dilation(labels == grow) & (labels == 0)] = grow
    if sphere is not None:
        organ, new, radius = sphere
        centre = np.argwhere(labels == organ).mean(axis=0)
        zyx = np.indices(labels.shape)
        inside = sum((zyx[i] - centre[i]) ** 2 for i in range(3)) <= radius ** 2
        edited[inside & (labels == organ)] = new
    image = sitk.GetImageFromArray(edited)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    assert path.stat().st_size < UPLOAD_LIMIT_MB * 2 ** 20
    return edited


def _coloured_pixels(pixels: np.ndarray) -> int:
    """Pixels far from grey (R, G and B spread over 40): the overlay's colours and the segments' outlines."""
    return int(((pixels.max(axis=-1) - pixels.min(axis=-1)) > 40).sum())


def _beyond_margin(region: np.ndarray, spacing_xyz) -> np.ndarray:
    """Voxels at least MARGIN_MM from the region: the engine's blend weight is 0 there (the existing volume's)."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(~region, sampling=tuple(spacing_xyz)[::-1]) >= MARGIN_MM


def _download_generated(driver, folder: Path) -> dict[str, np.ndarray]:
    """Download generated (.zip) into `folder`: its volumes as arrays (z, y, x) and the provenance."""
    import SimpleITK as sitk

    archive = DOWNLOADS / "semanticsynth-generated.zip"
    archive.unlink(missing_ok=True)
    _click(driver, "download-generated")
    _wait(driver, archive.exists, 30, "the download did not arrive")
    time.sleep(0.5)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)
        out = {"provenance": json.loads(z.read("provenance.json")), "names": sorted(z.namelist())}
    for name in out["names"]:
        if name.endswith(".nrrd"):
            image = sitk.ReadImage(str(folder / name))
            out[name[:-5]] = sitk.GetArrayFromImage(image)
            out[name[:-5] + "_size"] = image.GetSize()
    return out


def _upload_edited(driver, path: Path):
    from selenium.webdriver.common.by import By

    upload = driver.find_element(By.CSS_SELECTOR, "input#upload-edited, #upload-edited input[type=file]")
    driver.execute_script("arguments[0].value = ''", upload)
    upload.send_keys(str(path))
    _wait(driver, lambda: _text(driver, "status").startswith(f"Loaded edited map {path.name[:-7]}"), 60,
          "the edited map did not load")
    assert not _text(driver, "message")


def test_regenerate_edited_region_and_uncertainty(browser, tmp_path):
    """Generate on the sample, upload a copy with the spleen grown, Regenerate edited region: the volume the server
    holds (downloaded) keeps every voxel beyond region + margin bit for bit and changes the region. Then a sphere of
    the liver relabelled, Uncertainty of the edited region (K = 3): the mean keeps every voxel beyond region + margin,
    the std is exactly 0 there and above 0 in the region, shown as an overlay with its legend and a per-label table."""
    import SimpleITK as sitk

    driver = browser
    start = time.perf_counter()
    _load_sample(driver)
    reference = sitk.ReadImage(str(SAMPLE))
    labels = sitk.GetArrayFromImage(reference)
    spacing = reference.GetSpacing()
    _set_field(driver, "steps", "2")
    _click(driver, "generate")
    _wait_for_job(driver, lambda: _text(driver, "status").startswith("Generated"), 300, "generation did not finish")
    before = _download_generated(driver, tmp_path / "before")
    assert before["generated_size"] == reference.GetSize() and "uncertainty.nrrd" not in before["names"]

    # 1. one organ enlarged: only where it grew, and its margin, is regenerated
    first = _edited_copy(labels, reference, tmp_path / "spleen_grown.nii.gz", grow=SPLEEN)
    region = first != labels
    _upload_edited(driver, tmp_path / "spleen_grown.nii.gz")
    assert f"{int(region.sum())} voxels differ" in _text(driver, "status")
    _set_field(driver, "margin", f"{MARGIN_MM:g}")
    time.sleep(0.5)
    nodes = _scene_nodes(driver)
    _click(driver, "regenerate-edit")
    _wait_for_job(driver, lambda: _text(driver, "status").startswith("Regenerated the edited region of"), 300,
                  "the regeneration did not finish")
    # the edited map is now the source (the sample's segmentation went), the output before the edit is kept
    assert _text(driver, "source-name") == "spleen_grown" and not _text(driver, "edited-name")
    now = _scene_nodes(driver)
    generated = [n for n in nodes if "synthetic CT" in n]
    assert len(generated) == 1 and generated[0] in now and "spleen_grown" in now
    assert "abdomen_ct_totalseg_labels" not in now and len(now) == len(nodes)
    assert _text(driver, "view-before").upper() == "BEFORE EDIT"
    after = _download_generated(driver, tmp_path / "after")
    kept = _beyond_margin(region, spacing)
    assert np.array_equal(after["generated"][kept], before["generated"][kept]), "a voxel beyond region + margin changed"
    changed = after["generated"][region] != before["generated"][region]
    difference = np.abs(after["generated"][region] - before["generated"][region])
    print(f"regenerated: {int(region.sum())} voxels in the region, {changed.mean():.1%} changed, mean |difference| "
          f"{difference.mean():.1f} HU; {int(kept.sum())} voxels beyond the margin, all equal")
    assert changed.mean() > 0.9 and difference.mean() > 1.0
    assert json.loads(after["provenance"]["request"])["margin"] == MARGIN_MM

    # 2. a sphere in the liver relabelled as stomach, and the uncertainty of that edit: K = 3 regenerations
    second = _edited_copy(first, reference, tmp_path / "liver_sphere.nii.gz", sphere=(LIVER, STOMACH, 5.0))
    region = second != first
    _upload_edited(driver, tmp_path / "liver_sphere.nii.gz")
    _set_field(driver, "uncertainty-samples", "3")
    _click(driver, "uncertainty-of-edit")
    time.sleep(0.5)  # the typed K and the checkbox reach the server's state before the click does
    _click(driver, "uncertainty")
    _wait_for_job(driver, lambda: "mean of 3 samples" in _text(driver, "status"), 300,
                  "the uncertainty run did not finish")
    assert _text(driver, "status").startswith("Regenerated the edited region of")
    legend = _wait(driver, lambda: _text(driver, "uncertainty-legend"), 30, "no legend for the uncertainty")
    largest = float(re.search(r"max ([0-9.]+) HU", legend).group(1))
    table = _text(driver, "uncertainty-table")
    assert table.startswith("Label std boundary interior") and "liver" in table and "stomach" in table, table
    # on screen (the slice views moved to the edit when it was uploaded): the std's colours over the region only,
    # its zeros transparent; they go with the checkbox and come back
    with_overlay = _stable_view(driver)
    _save(driver, "uncertainty.png")
    _click(driver, "show-uncertainty")
    _wait(driver, lambda: _coloured_pixels(_axial_view(driver)) < _coloured_pixels(with_overlay) - 200, 30,
          "the overlay did not go away")
    without_overlay = _stable_view(driver)
    assert not _text(driver, "uncertainty-legend")
    changed = np.abs(with_overlay - without_overlay).max(axis=-1) > 10
    assert 200 < changed.sum() < 0.1 * changed.size, f"{changed.sum()} of {changed.size} pixels changed by the overlay"
    _click(driver, "show-uncertainty")
    _wait(driver, lambda: np.abs(_axial_view(driver) - with_overlay).mean() < 2, 30, "the overlay did not come back")

    result = _download_generated(driver, tmp_path / "uncertainty")
    assert result["names"] == ["generated.nrrd", "provenance.json", "uncertainty.nrrd"]
    std, mean = result["uncertainty"], result["generated"]
    kept = _beyond_margin(region, spacing)
    assert np.array_equal(mean[kept], after["generated"][kept]), "the mean changed a voxel beyond region + margin"
    assert (std[kept] == 0).all(), "the std is not 0 beyond region + margin"
    assert (std[region] > 0).mean() > 0.9
    assert abs(float(std.max()) - largest) <= 0.05 + 1e-3 * largest
    print(f"uncertainty: std in the region {std[region].mean():.1f} HU (largest {std.max():.1f}), 0 at all "
          f"{int(kept.sum())} voxels beyond the margin; test {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize("case, expected", [
    ("same", "spleen_same equals abdomen_ct_totalseg_labels: no voxel changed, nothing to regenerate"),
    ("grid", "spleen_cropped is not on the grid of abdomen_ct_totalseg_labels"),
])
def test_bad_edited_maps_give_one_line(browser, tmp_path, case, expected):
    """An edited map equal to the source, or on another grid, is refused at upload in one line; nothing is added."""
    import SimpleITK as sitk
    from selenium.webdriver.common.by import By

    driver = browser
    _load_sample(driver)
    before, status = _scene_nodes(driver), _text(driver, "status")
    reference = sitk.ReadImage(str(SAMPLE))
    if case == "same":
        path = tmp_path / "spleen_same.nii.gz"
        sitk.WriteImage(reference, str(path))
    else:
        path = tmp_path / "spleen_cropped.nii.gz"
        sitk.WriteImage(reference[:, :, 2:], str(path))
    upload = driver.find_element(By.CSS_SELECTOR, "input#upload-edited, #upload-edited input[type=file]")
    driver.execute_script("arguments[0].value = ''", upload)
    upload.send_keys(str(path))
    message = _wait(driver, lambda: _text(driver, "message"), 30, f"no message for the {case} edited map")
    assert message.startswith(expected) and "\n" not in message.strip(), message
    assert _scene_nodes(driver) == before and _text(driver, "status") == status and not _text(driver, "edited-name")
    driver.find_element(By.CSS_SELECTOR, "#message button").click()
    _wait(driver, lambda: not _text(driver, "message"), 10, "the message did not close")
    driver.execute_script("arguments[0].value = ''", upload)


def test_uncertainty_shows_samples_and_cancels(browser):
    """K samples in one run: the status names the sample and the bar covers all K; Cancel ends it and adds nothing."""
    driver = browser
    _load_sample(driver)
    before = _scene_nodes(driver)
    _set_field(driver, "steps", "200")
    _set_field(driver, "uncertainty-samples", "3")
    time.sleep(0.5)  # the typed values reach the server's state before the click does
    _click(driver, "uncertainty")
    _wait_for_job(driver, lambda: re.match(r"Sample 1 of 3: Denoising \d+/200", _text(driver, "status"))
                  or _text(driver, "message"), 300, "no progress of the first sample was shown")
    assert not _text(driver, "message")
    progress = float(driver.find_element("id", "progress").get_attribute("aria-valuenow") or 0)
    assert progress <= 100 / 3 + 0.1, progress  # the first of three samples: at most a third of the bar
    _click(driver, "cancel")
    _wait(driver, lambda: _text(driver, "status") == "Cancelled; nothing was added", 60, "cancel did not end the run")
    assert _scene_nodes(driver) == before
    _set_field(driver, "steps", "2")


def test_uncertainty_rows_order_the_engine_report():
    """The per-label table: the engine's report (id -> name, voxels, std, boundary_std, interior_std), most uncertain
    first, numbers to one decimal; a part without voxels (no interior) is left empty."""
    from SemanticSynthLib.web.app import uncertainty_rows

    report = {"uncertainty": {"samples": 3, "per_label": {
        "5": {"name": "liver", "voxels": 900, "std": 4.26, "boundary_std": 9.0, "interior_std": 2.04},
        "6": {"name": "stomach", "voxels": 12, "std": 11.0, "boundary_std": 11.0}}}}
    assert uncertainty_rows(report) == [
        {"id": "6", "name": "stomach", "voxels": 12, "std": "11.0", "boundary": "11.0", "interior": ""},
        {"id": "5", "name": "liver", "voxels": 900, "std": "4.3", "boundary": "9.0", "interior": "2.0"}]
    assert uncertainty_rows({}) == [] and uncertainty_rows(None) == []
