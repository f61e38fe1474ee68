"""The web view in a real browser: Debian's chromium, headless, driven by Selenium through the
system chromium-driver (nothing is downloaded).

It loads the page, watches the label change as the video changes sign, clicks a capture button
and finds the files on disk, and saves screenshots at a phone's and a laptop's size into
``test-artifacts/`` (look at them: the page must be clear at both sizes).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT
from tests.web_helpers import ROI, Served, tiny_colour_model, wait_for, write_colour_video

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORTS = {"phone": (390, 844), "laptop": (1366, 900)}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """A headless chromium; skipped where Debian's chromium/chromium-driver are not installed."""
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.skip("apt-get install chromium chromium-driver: the browser test needs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _labels_shown(driver, seconds: float) -> list[str]:
    """The label text the page shows, sampled every 50 ms (consecutive repeats collapsed)."""
    from selenium.webdriver.common.by import By

    shown: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = driver.find_element(By.ID, "label").text
        if text and (not shown or shown[-1] != text):
            shown.append(text)
        time.sleep(0.05)
    return shown


def _stream_is_playing(driver) -> bool:
    return driver.execute_script(
        "const i = document.getElementById('stream'); return i.complete && i.naturalWidth > 0;"
    )


def _capture_by_click(driver, served: Served, label: int, count: int) -> list[Path]:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "count")
    box.clear()
    box.send_keys(str(count))
    driver.find_element(By.CSS_SELECTOR, f'button[data-label="{label}"]').click()
    folder = served.captures / str(label)
    assert wait_for(lambda: len(list(folder.glob("*.jpg"))) >= count, timeout=15), folder
    # The page shows the new count on the button.
    button = driver.find_element(By.CSS_SELECTOR, f'button[data-label="{label}"] small')
    assert wait_for(lambda: button.text == str(count), timeout=5), button.text
    return sorted(folder.glob("*.jpg"))


def _viewport(driver, size: str, height: int | None = None) -> None:
    """Emulate the device's viewport exactly (a phone: mobile, no scrollbars) over DevTools."""
    w, h = VIEWPORTS[size]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": height or h, "deviceScaleFactor": 1, "mobile": size == "phone"},
    )


def _screenshots(driver, name: str) -> None:
    """What a user first sees, and the whole page, at each size."""
    ARTIFACTS.mkdir(exist_ok=True)
    for size in VIEWPORTS:
        _viewport(driver, size)
        time.sleep(0.6)  # a few polls and stream frames at the new size
        # The layout fits the width: no sideways scrolling.
        wide = driver.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];"
        )
        assert wide[0] <= wide[1], (size, wide)
        driver.save_screenshot(str(ARTIFACTS / f"{name}-{size}.png"))
        full = driver.execute_script("return document.documentElement.scrollHeight")
        _viewport(driver, size, height=full)
        time.sleep(0.3)
        driver.save_screenshot(str(ARTIFACTS / f"{name}-{size}-full.png"))


def _serve(model: Path, video: Path, captures: Path) -> Served:
    s = Served(
        "--model", str(model), "--source", str(video), "--headless", "--loop",
        "--serve", "127.0.0.1:0", "--capture-dir", str(captures), "--capture-countdown", "0.5",
    )  # fmt: skip
    s.captures = captures
    return s


@pytest.mark.slow  # several seconds of sockets or a browser: the full suite only
def test_page_in_chromium_with_drawn_video(browser, tmp_path: Path) -> None:
    """Fast: the tiny colour model (red 0, blue 2) on a drawn video, no training needed."""
    model = tiny_colour_model(tmp_path / "tiny.onnx")
    video = write_colour_video(tmp_path / "colours.avi", [0, 2], 30)
    served = _serve(model, video, tmp_path / "captures")
    try:
        _viewport(browser, "laptop")
        browser.get(served.url)
        assert wait_for(lambda: _stream_is_playing(browser), timeout=10)
        shown = _labels_shown(browser, 3.5)
        assert {"0", "2"} <= set(shown) and len(shown) >= 3, shown  # it changes, and back
        files = _capture_by_click(browser, served, 1, 5)
        assert len(files) == 5
        assert cv2.imread(str(files[0])).shape == (ROI[2], ROI[2], 3)
        _screenshots(browser, "web-drawn")
    finally:
        code, _, err = served.stop()
    assert code == 0, err


@pytest.fixture(scope="module")
def signs_video(signs_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """SIGNS test images held 1 s each in the ROI of a 640x480 video: classes 0, 1, ..., 5."""
    out = tmp_path_factory.mktemp("signs-video")
    files = sorted((signs_data / "test_signs").glob("*.jpg"))
    picked = [next(f for f in files if f.name.startswith(f"{c}_")) for c in range(6)]
    path = out / "signs.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    x, y, side = ROI
    for f in picked:
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[y : y + side, x : x + side] = cv2.resize(
            cv2.imread(str(f)), (side, side), interpolation=cv2.INTER_NEAREST
        )
        for _ in range(30):
            writer.write(frame)
    writer.release()
    return {"path": path, "labels": [str(c) for c in range(6)]}


def test_page_in_chromium_with_trained_model_on_signs(
    browser, signs_video: dict, exported_dir: Path, tmp_path: Path
) -> None:
    """The session's trained int8 model on real SIGNS photos: the page follows the signs."""
    served = _serve(exported_dir / "tflite-int8.tflite", signs_video["path"], tmp_path / "cap")
    try:
        _viewport(browser, "laptop")
        browser.get(served.url)
        assert wait_for(lambda: _stream_is_playing(browser), timeout=10)
        shown = _labels_shown(browser, 7.0)  # more than one pass of the 6 s video
        signs = [s for s in shown if s != "no sign"]
        # The model is ~93% accurate: most of the six signs show, in the video's order.
        assert len(set(signs)) >= 4, shown
        assert set(signs) <= set(signs_video["labels"]), shown
        model = browser.find_element("id", "model").text
        assert "tflite-int8" in model and "export passed" in model, model
        _capture_by_click(browser, served, 4, 8)
        _screenshots(browser, "web-signs")
    finally:
        code, _, err = served.stop()
    assert code == 0, err
