"""Notebook 06 in a real browser: JupyterLab from the kit's venv on 127.0.0.1 with a token, headless Chromium
(Debian's ``chromium`` + ``chromium-driver``) driven by selenium. Runs all cells, changes the patient dropdown and
the frame slider, and checks that the figures and the phenotype readout change, that no cell fails, that nothing
is fetched from outside 127.0.0.1 (no CDN), and that the saved notebook is committed without outputs (the output
guard). Issue 21: plays the cine (frames per second counted in the browser, at least 10; the label and the volume
cursor always those of the frame shown), stops it (the frame stays), changes the condition, split and list filters
to "worst predicted" (the sequence that left the cine blank) and checks every panel is drawn, not blank.
Screenshots go to ``outputs/screenshots/`` (git-ignored): the viewer, the ECG with its toolbar shown, the
retrieval explorer at its largest top k, the map by a phenotype and by condition, the scatter, the K x K browser."""

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
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "Jupyter news?" pop-up over the screenshots
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


# The grey-level spread and the share of opaque pixels of what the browser shows: an ipympl canvas, or the image of
# the frame a Stack shows (``selector``); a blank panel has none of either.
_PIXELS = """
const [area, selector] = arguments;
const shown = Array.from(area.querySelectorAll(selector));
if (shown.length !== 1) return {count: shown.length};
const source = shown[0];
const width = source.naturalWidth || source.width, height = source.naturalHeight || source.height;
if (!width || !height || (source.complete === false)) return {count: 1, empty: true};
const canvas = document.createElement('canvas');
canvas.width = width; canvas.height = height;
const context = canvas.getContext('2d');
context.drawImage(source, 0, 0);
const pixels = context.getImageData(0, 0, width, height).data;
let n = 0, sum = 0, squares = 0, opaque = 0;
for (let i = 0; i < pixels.length; i += 4) {
  const grey = (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
  n++; sum += grey; squares += grey * grey; if (pixels[i + 3] === 255) opaque++;
}
const mean = sum / n;
return {count: 1, sd: Math.sqrt(Math.max(squares / n - mean * mean, 0)), opaque: opaque / n};
"""

# Play, watched in the browser at every paint for ``ms``: the frame the cine shows (its image's DOM class), how often it
# changes, and whether the label's text and the volume image are those of the same frame.
_WATCH = """
const [area, ms] = [arguments[0], arguments[1]];
const done = arguments[arguments.length - 1];
const frameOf = element => {
  const name = Array.from(element.classList).find(c => /^ptacl-frame-[0-9]+$/.test(c));
  return name === undefined ? null : Number(name.slice('ptacl-frame-'.length));
};
let paints = 0, changes = 0, disagree = 0, missing = 0, last = null;
const start = performance.now(), seen = new Set(), samples = [];
function paint() {
  const cine = area.querySelectorAll('.ptacl-cine-frame'), volume = area.querySelectorAll('.ptacl-volume-frame');
  const label = area.querySelectorAll('.ptacl-frame-label');
  paints++;
  if (cine.length !== 1 || !cine[0].complete || cine[0].naturalWidth === 0 || volume.length !== 1 || label.length !== 1) {
    missing++;
  } else {
    const frame = frameOf(cine[0]);
    const said = /^frame ([0-9]+) of/.exec(label[0].textContent);
    if (frame !== last) { if (last !== null) changes++; last = frame; }
    seen.add(frame);
    if (frameOf(volume[0]) !== frame || frameOf(label[0]) !== frame || !said || Number(said[1]) !== frame + 1) disagree++;
    if (samples.length < 8) samples.push([frame, label[0].textContent]);
  }
  if (performance.now() - start < ms) requestAnimationFrame(paint);
  else done({paints, changes, disagree, missing, distinct: seen.size, seconds: (performance.now() - start) / 1000,
             last, samples});
}
requestAnimationFrame(paint);
"""


def _shown_frame(driver, area):
    """(frame of the cine image shown, the label's text) in the browser."""
    return tuple(driver.execute_script(
        "const image = arguments[0].querySelector('.ptacl-cine-frame');"
        "const label = arguments[0].querySelector('.ptacl-frame-label');"
        "const name = image && Array.from(image.classList).find(c => /^ptacl-frame-[0-9]+$/.test(c));"
        "return [name ? Number(name.slice(12)) : null, label ? label.textContent : ''];", area))


def _select(area, name: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    return next(Select(s) for s in area.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
                if s.find_element(By.XPATH, "..").text.startswith(name))


def _assert_drawn(driver, area, what: str) -> dict:
    """Every panel of the viewer drawn: the ECG canvas, the cine's and the volume curve's frame images."""
    found = {}
    for name, selector in (("ECG", ".jupyter-matplotlib-canvas-div canvas:first-child"),
                           ("cine", ".ptacl-cine-frame"), ("volume curve", ".ptacl-volume-frame")):
        pixels = driver.execute_script(_PIXELS, area, selector)
        assert pixels.get("count") == 1 and not pixels.get("empty"), f"{what}: no {name} shown ({pixels})"
        assert pixels["sd"] > 10 and pixels["opaque"] > 0.99, f"{what}: the {name} panel is blank ({pixels})"
        found[name] = round(pixels["sd"], 1)
    return found


def test_notebook_06_in_jupyterlab_and_chromium(browser, lab):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()
    driver = browser
    driver.set_script_timeout(60)
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
    _wait(lambda: len(_canvas_images(driver, viewer)) >= 1 and _shown_frame(driver, viewer)[0] is not None, 60,
          "the viewer's figures to render")

    def readout():
        return driver.execute_script("return Array.from(arguments[0].querySelectorAll('.widget-html-content'))"
                                     ".map(e => e.innerText).find(t => t.includes('CMR truth vs predicted')) || ''", viewer)

    _wait(lambda: "predicted" in readout() and "frame 1 of" in viewer.text, 30, "the phenotype readout")
    assert "held out (test split)" in readout()  # the first subject shown is a test subject
    time.sleep(1.5)  # the first frames arrive
    _assert_drawn(driver, viewer, "opened")
    ecg_before = _canvas_images(driver, viewer)[0]
    cine_before = _shown_frame(driver, viewer)
    readout_before = readout()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView()", viewer)
    viewer_element = driver.execute_script("return arguments[0].closest('.jp-CodeCell')", viewer)
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_viewer_before.png"))
    # the toolbar (shown while the pointer is over the ECG) sits on the right margin, off the lead names
    ecg_canvas = viewer.find_element(By.CSS_SELECTOR, ".jupyter-matplotlib-canvas-div")
    ActionChains(driver).move_to_element(ecg_canvas).perform()
    time.sleep(1.0)
    toolbar = driver.execute_script(
        "const bar = arguments[0].querySelector('.jupyter-matplotlib-toolbar').getBoundingClientRect();"
        "const figure = arguments[0].querySelector('.jupyter-matplotlib-canvas-div').getBoundingClientRect();"
        "return [bar.left - figure.left, figure.width];", viewer)
    assert toolbar[0] > 0.94 * toolbar[1], f"the toolbar starts {toolbar[0]:.0f} px into a {toolbar[1]:.0f} px figure"
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_ecg_toolbar.png"))
    ActionChains(driver).move_to_element(viewer.find_element(By.CSS_SELECTOR, ".widget-html-content")).perform()

    # the patient dropdown
    patient = _select(viewer, "patient")
    first_patient = patient.first_selected_option.text
    patient.select_by_index(3)
    chosen = patient.first_selected_option.text
    assert chosen != first_patient
    _wait(lambda: chosen in readout() and readout() != readout_before, 30, "the readout to follow the dropdown")
    _wait(lambda: _canvas_images(driver, viewer)[0] != ecg_before, 30, "the ECG figure to change")

    # the frame slider: keyboard on its handle, as a user would; the cine, its label and the ECG follow
    ecg_frame_before = _canvas_images(driver, viewer)[0]
    handle = viewer.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    handle.click()
    for _ in range(6):
        handle.send_keys(Keys.ARROW_RIGHT)
    def moved(frame, text):
        return frame == 6 and text.startswith("frame 7 of")

    _wait(lambda: moved(*_shown_frame(driver, viewer)), 30, "the cine and its label to move")
    _wait(lambda: _canvas_images(driver, viewer)[0] != ecg_frame_before, 30, "the ECG cursors to move")
    assert cine_before[0] == 0 and cine_before[1].startswith("frame 1 of")
    time.sleep(1.0)
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_viewer_after.png"))

    # play: counted in the browser at every paint for 4 s
    play = next(b for b in viewer.find_elements(By.CSS_SELECTOR, "button.widget-toggle-button") if b.text == "play")
    play.click()
    watched = driver.execute_async_script(_WATCH, viewer, 4000)
    fps = watched["changes"] / watched["seconds"]
    print(f"browser test: play showed {fps:.1f} frames per second ({watched['changes']} frame changes in "
          f"{watched['seconds']:.1f} s, {watched['paints']} paints, {watched['distinct']} distinct frames; label or "
          f"volume cursor of another frame in {watched['disagree']} paints, no image in {watched['missing']})")
    assert fps >= 10, watched
    assert watched["disagree"] == 0 and watched["missing"] == 0, watched
    # stop: the frame stays where it stopped
    play.click()
    time.sleep(0.5)
    stopped = _shown_frame(driver, viewer)
    time.sleep(1.5)
    assert _shown_frame(driver, viewer) == stopped, (stopped, _shown_frame(driver, viewer))
    assert stopped[1].startswith(f"frame {stopped[0] + 1} of")
    slider = driver.execute_script("return arguments[0].querySelector('.widget-slider .noUi-handle')"
                                   ".getAttribute('aria-valuenow')", viewer)
    assert round(float(slider)) == stopped[0]

    # issue 21's sequence: play a few seconds, stop, then condition / split / list "worst predicted"
    play.click()
    time.sleep(3.0)
    play.click()
    for name, index in (("condition", 1), ("split", 3), ("list", 1)):  # a condition, the test split, worst first
        _select(viewer, name).select_by_index(index)
        time.sleep(0.3)

    def worst_shown():
        patient = _select(viewer, "patient")
        worst = patient.options[0].text if patient.options else None
        return worst is not None and patient.first_selected_option.text == worst and worst in readout()

    _wait(worst_shown, 30, "the worst predicted subject")
    _wait(lambda: _shown_frame(driver, viewer)[1].startswith("frame 1 of"), 30, "the new subject's first frame")
    for second in range(6):  # and it stays drawn: the panel went blank and never came back
        panels = _assert_drawn(driver, viewer, f"{second} s after the worst predicted subject opened")
        frame, text = _shown_frame(driver, viewer)
        assert text.startswith(f"frame {frame + 1} of")
        time.sleep(1.0)
    print(f"browser test: after play, stop and 'worst predicted' every panel is drawn (grey-level SD {panels})")
    viewer_element.screenshot(str(SCREENSHOTS / "06_explore_viewer_worst.png"))

    # the retrieval explorer's centred scores, as the browser shows them; top k = 8 for the captions
    retrieval = _cell_outputs(driver, 3)
    assert "centred" in retrieval.text
    before = _canvas_images(driver, retrieval)[0]
    top_k = next(s for s in retrieval.find_elements(By.CSS_SELECTOR, ".widget-slider")
                 if s.text.startswith("top k")).find_element(By.CSS_SELECTOR, ".noUi-handle")
    largest = round(float(top_k.get_attribute("aria-valuemax")))  # 8, or the gallery's size less the query
    top_k.click()
    for _ in range(8):
        top_k.send_keys(Keys.ARROW_RIGHT)
    _wait(lambda: f"precision@{largest}" in retrieval.text, 30, f"top k = {largest}")
    _wait(lambda: _canvas_images(driver, retrieval)[0] != before, 30, "the neighbours' figure")
    time.sleep(1.0)
    driver.execute_script("arguments[0].scrollIntoView()", retrieval)
    driver.execute_script("return arguments[0].closest('.jp-CodeCell')", retrieval).screenshot(
        str(SCREENSHOTS / "06_explore_retrieval_top_k.png"))

    # the map by a phenotype (a colour bar) and by condition (a legend), the scatter, the K x K browser
    for index, name in ((4, "06_explore_map_lvef.png"), (5, "06_explore_scatter.png"), (6, "06_explore_phases.png")):
        area = _cell_outputs(driver, index)
        driver.execute_script("arguments[0].scrollIntoView()", area)
        time.sleep(0.5)
        driver.execute_script("return arguments[0].closest('.jp-CodeCell')", area).screenshot(str(SCREENSHOTS / name))
    embedding_map = _cell_outputs(driver, 4)
    before = _canvas_images(driver, embedding_map)[0]
    _select(embedding_map, "colour").select_by_visible_text("condition")
    _wait(lambda: _canvas_images(driver, embedding_map)[0] != before, 30, "the map by condition")
    time.sleep(1.0)
    driver.execute_script("arguments[0].scrollIntoView()", embedding_map)
    driver.execute_script("return arguments[0].closest('.jp-CodeCell')", embedding_map).screenshot(
        str(SCREENSHOTS / "06_explore_map_condition.png"))
    driver.save_screenshot(str(SCREENSHOTS / "06_explore_window.png"))

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
