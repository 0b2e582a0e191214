"""Notebook 06 in a real browser: JupyterLab from the kit's venv on 127.0.0.1 with a token, headless Chromium
(Debian's ``chromium`` + ``chromium-driver``) driven by selenium. Runs all cells, changes the patient dropdown and
the frame slider, and checks that the figures and the phenotype readout change, that no cell fails, that nothing
is fetched from outside 127.0.0.1 (no CDN), and that the saved notebook is committed without outputs (the output
guard). Screenshots go to ``outputs/screenshots/`` (git-ignored)."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from ptacl_core import paths

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = paths.outputs_root() / "screenshots"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("the real-browser test needs Debian's chromium and chromium-driver packages "
                    f"(chromium: {CHROMIUM or 'absent'}, chromedriver: {CHROMEDRIVER or 'absent'}); "
                    "`apt-get install chromium chromium-driver` (.ci/run tries this)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency (pip install -e .[dev])")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,2200",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture
def lab(tmp_path, cohort, tiny_cache, trained_runs):
    """JupyterLab serving a folder holding a copy of notebook 06 whose parameters point at the test cohort; the
    folder is a git work tree with the output guard installed."""
    from test_explore_guard import guarded_clone

    from ptacl_core.tools.runner import _kernel_spec_dir

    folder = guarded_clone(tmp_path)
    nb = nbformat.read(paths.notebooks_dir() / "06_explore.ipynb", as_version=4)
    parameters = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source += "".join(f"\n{name} = {value!r}" for name, value in {
        "cohort_dir": str(cohort), "cache_dir": str(tiny_cache), "runs_dir": str(trained_runs),
        "embeddings_dir": str(tmp_path / "embeddings")}.items())
    nbformat.write(nb, folder / "06_explore.ipynb")
    written = (folder / "06_explore.ipynb").read_text()
    port, token = _free_port(), secrets.token_hex(16)
    environment = {**os.environ, "JUPYTER_PATH": str(_kernel_spec_dir()), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
                   "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers run as root; JupyterLab refuses root without it
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(command, cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                return response.status == 200
        except OSError:
            return server.poll() is not None and pytest.fail((tmp_path / "jupyter.log").read_text()[-3000:])

    _wait(up, 60, "JupyterLab to start")
    yield {"url": url, "token": token, "folder": folder, "written": written}
    server.terminate()
    server.wait(timeout=20)
    log.close()


def _cell_outputs(driver, index: int):
    return driver.execute_script(
        "return document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell')[arguments[0]]"
        ".querySelector('.jp-OutputArea')", index)


def _canvas_images(driver, area) -> list[str]:
    return driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('.jupyter-matplotlib-canvas-div'))"
        ".map(d => d.querySelector('canvas').toDataURL())", area)  # the figure canvas, not the rubber band above it


def test_notebook_06_in_jupyterlab_and_chromium(browser, lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()
    driver = browser
    driver.get(f"{lab['url']}/lab/tree/06_explore.ipynb?token={lab['token']}")
    _wait(lambda: driver.execute_script("return window.jupyterapp && document.querySelectorAll("
                                        "'.jp-NotebookPanel .jp-CodeCell').length > 0"), 90, "the notebook to open")
    _wait(lambda: driver.execute_script("return document.querySelector('.jp-Notebook-ExecutionIndicator') === null || "
                                        "!document.body.innerText.includes('Kernel starting')"), 60, "the kernel")
    time.sleep(2)
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def all_ran():
        prompts = driver.execute_script("return Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell "
                                        ".jp-InputArea-prompt')).map(p => p.innerText)")
        return prompts and all(p.strip().startswith("[") and p.strip()[1:-2].isdigit() for p in prompts)

    _wait(all_ran, 240, "all cells to run")
    errors = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                                                   ".jp-RenderedText, [data-mime-type='application/vnd.jupyter.error']")
    assert not [e.text for e in errors if "Traceback" in e.text or "Error" in e.text]
    viewer = _cell_outputs(driver, 2)  # code cells: parameters, load, viewer, ...
    _wait(lambda: len(_canvas_images(driver, viewer)) >= 2, 60, "the viewer's figures to render")

    def readout():
        return driver.execute_script("return Array.from(arguments[0].querySelectorAll('.widget-html-content'))"
                                     ".map(e => e.innerText).find(t => t.includes('CMR truth vs predicted')) || ''", viewer)

    _wait(lambda: "predicted" in readout() and "frame 0 of" in viewer.text, 30, "the phenotype readout")
    time.sleep(1.5)  # the first frames arrive
    ecg_before, cine_before = _canvas_images(driver, viewer)[:2]
    readout_before = readout()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView()", viewer)
    viewer_element = driver.execute_script("return arguments[0].closest('.jp-CodeCell')", viewer)
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_viewer_before.png"))

    # the patient dropdown
    selects = viewer.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
    patient = next(s for s in selects if "patient" in s.find_element(By.XPATH, "..").text)
    first_patient = Select(patient).first_selected_option.text
    Select(patient).select_by_index(3)
    chosen = Select(patient).first_selected_option.text
    assert chosen != first_patient
    _wait(lambda: chosen in readout() and readout() != readout_before, 30, "the readout to follow the dropdown")
    _wait(lambda: _canvas_images(driver, viewer)[0] != ecg_before, 30, "the ECG figure to change")

    # the frame slider: keyboard on its handle, as a user would
    frame_before = _canvas_images(driver, viewer)[1]
    handle = viewer.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    handle.click()
    for _ in range(6):
        handle.send_keys(Keys.ARROW_RIGHT)
    _wait(lambda: "frame 0 of" not in viewer.text, 30, "the frame label to move")
    _wait(lambda: _canvas_images(driver, viewer)[1] != frame_before, 30, "the cine figure to change")
    time.sleep(1.0)
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_viewer_after.png"))
    driver.save_screenshot(str(SCREENSHOTS / "06_explore_window.png"))
    assert cine_before  # drawn before any change

    # the retrieval explorer's centred scores, as the browser shows them
    retrieval = _cell_outputs(driver, 3)
    assert "centred" in retrieval.text

    # nothing came from outside this machine: no CDN
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith((lab["url"], "data:", "blob:", "ws://127.0.0.1"))]
    assert not outside, outside[:5]

    # save from JupyterLab: the work tree gets the outputs, git (the output guard) does not
    driver.execute_script("return window.jupyterapp.commands.execute('docmanager:save')")
    saved = lab["folder"] / "06_explore.ipynb"
    _wait(lambda: any(cell.get("outputs") for cell in json.loads(saved.read_text())["cells"] if cell["cell_type"] == "code"),
          30, "JupyterLab to save the executed notebook")
    subprocess.run(["git", "add", "06_explore.ipynb"], cwd=lab["folder"], check=True)
    staged = json.loads(subprocess.run(["git", "show", ":06_explore.ipynb"], cwd=lab["folder"], check=True,
                                       capture_output=True, text=True).stdout)
    assert all(not cell.get("outputs") for cell in staged["cells"] if cell["cell_type"] == "code")
    # and what JupyterLab rewrote on opening (kernelspec, language_info) is no change for git
    staged_text = subprocess.run(["git", "show", ":06_explore.ipynb"], cwd=lab["folder"], check=True,
                                 capture_output=True, text=True).stdout
    assert staged_text == lab["written"], "JupyterLab's save differs from the opened notebook after the guard"
    print(f"browser test: {time.monotonic() - started:.1f} s in the browser; screenshots in {SCREENSHOTS}")
