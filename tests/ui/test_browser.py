"""The app in a real browser: `streamlit run ui/app.py` on a free port, Debian's headless Chromium driven by
Selenium through /usr/bin/chromedriver, a real run (real graph, sandbox, library; the scripted demo model)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui.ui_helpers import streamlit_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RUN_TIMEOUT_S = 300
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1400",
)  # fmt: skip

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-dev.txt")
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="Chromium is missing: apt-get install -y chromium chromium-driver (scripts/test_services.sh does it)",
)


@pytest.fixture
def app_url(tmp_path: Path, seeded_home: Path) -> Iterator[str]:
    """`streamlit run ui/app.py` with a copy of the seeded data directory and the demo model; stopped by pid."""
    home = tmp_path / "sea-home"
    shutil.copytree(seeded_home, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEA_")}
    env.update(SEA_HOME=str(home), SEA_MODEL="scripted:demo", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    if "SEA_SANDBOX_IMAGE" in os.environ:
        env["SEA_SANDBOX_IMAGE"] = os.environ["SEA_SANDBOX_IMAGE"]
    log = tmp_path / "streamlit.log"
    with streamlit_app(log, env, "--server.headless", "true", "--server.address", "127.0.0.1") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium with a new empty profile."""
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_asking_in_a_real_browser_shows_the_trace_and_the_answer(app_url: str, browser: object, tmp_path: Path
                                                                 ) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(app_url)  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 90)
    chat = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']")))
    wait.until(lambda d: "thread=" in d.current_url)  # the thread id is mirrored to the URL

    def main_text(d: object) -> str:
        return str(d.find_element(By.CSS_SELECTOR, "[data-testid='stMainBlockContainer']").text)  # type: ignore[attr-defined]

    # Live: a synthesis run takes several sandbox jobs (red phase, verify, the call), so the first step's status
    # box must show its summary while the answer is still to come. A reuse run can finish inside one poll, so
    # liveness is checked on the synthesis.
    chat.send_keys("Reverse the string 'hello world'")
    chat.send_keys(Keys.ENTER)

    def first_step_done(d: object) -> str | bool:
        text = main_text(d)
        return text if "retrieve —" in text else False

    first_seen = WebDriverWait(driver, RUN_TIMEOUT_S, poll_frequency=0.2).until(first_step_done)
    assert "The result is" not in first_seen
    WebDriverWait(driver, RUN_TIMEOUT_S).until(lambda d: "The result is 'dlrow olleh'" in main_text(d))

    chat = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid='stChatInputTextArea']")))
    chat.send_keys("What is 15 percent of 300?")
    chat.send_keys(Keys.ENTER)
    WebDriverWait(driver, RUN_TIMEOUT_S).until(lambda d: "The result is 45" in main_text(d))
    main = driver.find_element(By.CSS_SELECTOR, "[data-testid='stMainBlockContainer']")  # type: ignore[attr-defined]

    text = main.text
    for node in ("retrieve", "decide", "execute", "respond"):
        assert f"{node} —" in text, text
    assert "offline demo — scripted, not a real model" in text
    assert "Traceback" not in text
    # The sidebar's library is drawn after the run, with the call just made counted.
    def sidebar_text(d: object) -> str:
        return str(d.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar']").text)  # type: ignore[attr-defined]

    WebDriverWait(driver, 90).until(lambda d: "calculate_percentage v1 · 1 call(s)" in sidebar_text(d))
    shot = tmp_path / "answer.png"
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    print(f"screenshot: {shot}")
