"""The `aimc serve` page in headless Chromium (the system's chromium + chromedriver; nothing is downloaded):
type an instruction, start, watch frames and events arrive, compare two prompts, see errors, save a screenshot.

Skipped with the reason when the browser, its driver or selenium is missing; `.ci/run` installs the browser
with apt-get where it can. Waits poll for conditions (the page under a busy CPU can be slow); nothing is timed.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from pathlib import Path

import pytest

from aimc.core.video import count_frames
from tests.serve.conftest import WAIT_S

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
SCREENSHOT_ENV = "AIMC_SERVE_SCREENSHOT"
"""Set to a path to keep the comparison screenshot there too (docs/img/serve.png is made that way)."""


def _browser_paths() -> tuple[str, str]:
    """(browser, driver) from PATH, or a skip that names what is missing."""
    pytest.importorskip("selenium", reason="browser tests need selenium (pip install -e '.[dev]')")
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
    if missing:
        pytest.skip(f"browser tests need headless Chromium from the system packages; missing: {', '.join(missing)} "
                    "(apt-get install chromium chromium-driver; .ci/run does this where apt-get works)")
    return browser, driver  # type: ignore[return-value]


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with the driver path below, Selenium Manager is never asked
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    try:
        d = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except WebDriverException as e:
        pytest.skip(f"headless Chromium ({browser}) did not start: {e.msg}")
    d.set_page_load_timeout(WAIT_S)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def page(driver, make_server):
    srv = make_server()
    driver.get(srv.url)
    _wait(driver, lambda d: d.find_element("id", "instruction-0"), "the page to load the server's info")
    return srv


def _wait(driver, condition, what: str):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        condition, message=f"waiting for {what}")


def _frames(driver, k: int) -> int:
    return int(driver.find_element("id", f"view-{k}").get_attribute("data-frames"))


def _log(driver, k: int) -> list[str]:
    return [li.text for li in driver.find_elements("css selector", f"#log-{k} li")]


def _setup(driver, seed: int, speed: str = "0") -> None:
    from selenium.webdriver.support.ui import Select

    seed_box = driver.find_element("id", "seed")
    seed_box.clear()
    seed_box.send_keys(str(seed))
    Select(driver.find_element("id", "speed")).select_by_value(speed)


def _type(driver, element_id: str, text: str) -> None:
    box = driver.find_element("id", element_id)
    box.clear()
    box.send_keys(text)


def test_type_an_instruction_start_and_watch_frames_and_events(page, driver, tmp_path):
    _setup(driver, seed=4)
    _type(driver, "instruction-0", "chop a tree")
    driver.find_element("id", "start").click()
    _wait(driver, lambda d: _frames(d, 0) >= 10, "10 frames in the view")
    log = _wait(driver, lambda d: _log(d, 0), "an event in the log")
    assert re.fullmatch(r"step \d+: [a-z_]+( use as goal)?", log[0]), log
    assert driver.find_element("id", "error").get_attribute("hidden") is not None  # no error shown
    assert driver.find_element("css selector", "#view-0 h3").text == "chop a tree | guidance 0"
    src = driver.find_element("id", "frame-0").get_attribute("src")
    assert src.startswith("data:image/jpeg;base64,")

    with urllib.request.urlopen(driver.find_element("id", "mp4-0").get_attribute("href"), timeout=WAIT_S) as r:
        (tmp_path / "episode.mp4").write_bytes(r.read())
    assert count_frames(tmp_path / "episode.mp4") >= 10  # the episode so far, downloadable at any point

    driver.find_element("id", "reset").click()
    _wait(driver, lambda d: not d.find_elements("id", "view-0"), "reset to clear the view")
    _wait(driver, lambda d: page.manager.open_games == 0, "reset to close the game on the server")


def test_compare_two_prompts_on_one_world_and_save_a_screenshot(page, driver, tmp_path_factory):
    _setup(driver, seed=4)
    _type(driver, "instruction-0", "chop a tree")
    driver.find_element("id", "add-panel").click()
    _type(driver, "instruction-1", "collect a sapling")
    driver.find_element("id", "start").click()
    for k in (0, 1):
        _wait(driver, lambda d, k=k: _frames(d, k) >= 20 and _log(d, k), f"frames and an event in panel {k}")
    titles = [h.text for h in driver.find_elements("css selector", ".view h3")]
    assert titles == ["chop a tree | guidance 0", "collect a sapling | guidance 0"]
    shot = tmp_path_factory.mktemp("screenshots") / "serve-compare.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, Path(os.environ[SCREENSHOT_ENV]))
    driver.find_element("id", "remove-1").click()
    driver.find_element("id", "reset").click()
    _wait(driver, lambda d: page.manager.open_games == 0, "reset to close the game")


def test_errors_appear_in_the_page_as_one_message_and_the_server_keeps_running(page, driver):
    _type(driver, "instruction-0", "   ")
    driver.find_element("id", "start").click()
    error = _wait(driver, lambda d: d.find_element("id", "error").text, "the error message")
    assert error == 'the panel: the instruction is empty; say what the agent should do, e.g. "chop a tree" (or pick a goal clip)'
    _type(driver, "instruction-0", "collect a sapling")
    driver.find_element("id", "start").click()
    _wait(driver, lambda d: _frames(d, 0) >= 1, "a frame after the error")
    assert driver.find_element("id", "error").get_attribute("hidden") is not None  # the message is gone
    driver.find_element("id", "reset").click()
