"""The playground page at ``/`` in headless Chromium (Debian's, driven by Playwright) against the real service.

Each tab's round trip, the 3D view's pixels, no console errors and no request leaving 127.0.0.1.
Every test writes its tab's screenshot into docs/screenshots/. The API-key prompt is tested on the
in-process app with a fake backend (a second Triton would cost a minute).
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from tests.crystals import rattled, si
from tests.gateway.test_predict import NACL_POSCAR

pytestmark = pytest.mark.integration
playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 120_000


@dataclass
class Recorded:
    """What a page did: every request URL, console errors and uncaught exceptions."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    allowed_console: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        found = [f"request off the machine: {url}" for url in self.requests if not local(url)]
        found += [f"console error: {text}" for text in self.console_errors
                  if not any(allowed in text for allowed in self.allowed_console)]
        return found + [f"page error: {text}" for text in self.page_errors]


def local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob") or parsed.hostname == "127.0.0.1"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page; at the end no request may have left 127.0.0.1 and the console must be clean."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block", accept_downloads=False)
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    record = Recorded()
    opened.on("request", lambda request: record.requests.append(request.url))
    opened.on("console", lambda message: message.type == "error" and record.console_errors.append(message.text))
    opened.on("pageerror", lambda error: record.page_errors.append(str(error)))
    opened.recorded = record
    yield opened
    context.close()
    assert not record.problems(), record.problems()
    assert record.requests, "the page made no request at all"


def open_tab(page, url: str, tab: str) -> None:
    page.goto(f"{url}/#{tab}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.is_visible(f"#tab-{tab}")


def canvas_colours(page, selector: str) -> dict:
    """The canvas's distinct colours and how many pixels differ from its top-left (background) pixel."""
    return page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        const colours = new Set();
        let drawn = 0;
        for (let i = 0; i < data.length; i += 4) {
            colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
            if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) drawn += 1;
        }
        return {colours: colours.size, drawn, total: canvas.width * canvas.height};
    }""", selector)


def canvas_digest(page, selector: str) -> str:
    return hashlib.sha256(page.evaluate(f"document.querySelector('{selector}').toDataURL()").encode()).hexdigest()


def assert_drawn(page, selector: str) -> None:
    pixels = canvas_colours(page, selector)
    assert pixels["drawn"] > 0.02 * pixels["total"] and pixels["colours"] > 20, pixels


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def wait_for_answer(page, done_js: str, tab: str) -> None:
    """Wait until ``done_js`` is true or the tab shows an error, which fails the test with its text at once."""
    page.wait_for_function(f"() => ({done_js}) || !document.querySelector('#{tab}-error').hidden")
    if page.is_visible(f"#{tab}-error"):
        pytest.fail(f"the {tab} tab shows an error: {page.inner_text(f'#{tab}-error')}")


def rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{table} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.innerText))")


def test_generate_shows_candidates_and_draws_the_chosen_one(service, page):
    open_tab(page, service.url, "generate")
    page.fill("#gen-comp", "NaCl")
    page.fill("#gen-z", "2")
    page.fill("#gen-n", "2")
    page.fill("#gen-seed", "7")
    page.click("#gen-submit")
    wait_for_answer(page, "document.querySelector('#gen-results tbody tr')", "gen")
    candidates = rows(page, "#gen-results")
    assert len(candidates) == 2 and all(row[1] == "Na1Cl1 Z=2" for row in candidates)
    assert all(row[2] in ("valid", "invalid") for row in candidates)
    assert any(float(row[4]) < 0 for row in candidates if row[4] != "—")  # ALIGNN's formation energy, eV/atom
    assert page.inner_text("#gen-cif").startswith("data_Na2Cl2\n")
    assert page.inner_text("#gen-legend").split() == ["Na", "Cl"]
    assert page.inner_text("#gen-view-message").endswith("as generated")
    assert_drawn(page, "#gen-viewer")
    assert not page.is_disabled("#gen-download")
    screenshot(page, "generate.png")

    box = page.locator("#gen-viewer").bounding_box()
    still = canvas_digest(page, "#gen-viewer")
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 220, box["y"] + 160, steps=5)
    page.mouse.up()
    rotated = canvas_digest(page, "#gen-viewer")
    page.mouse.wheel(0, -400)
    assert len({still, rotated, canvas_digest(page, "#gen-viewer")}) == 3  # drag rotates, the wheel zooms


def test_relax_streams_each_structure_into_the_table(service, page, tmp_path):
    poscar = tmp_path / "Si_rattled.vasp"
    rattled(si(), seed=3).write(poscar, format="vasp", direct=True)
    rock_salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cif = tmp_path / "NaCl.cif"
    cif.write_text(str(CifWriter(rock_salt, symprec=0.01)))  # the asymmetric unit and the operations
    assert "_symmetry_equiv_pos_as_xyz" in cif.read_text()
    unreadable = tmp_path / "notes.txt"
    unreadable.write_text("this is not a structure\n")
    open_tab(page, service.url, "relax")
    page.set_input_files("#relax-files", [str(poscar), str(cif), str(unreadable)])
    page.fill("#relax-fmax", "0.05")
    page.click("#relax-submit")
    wait_for_answer(page, "document.querySelector('#relax-progress').innerText.startsWith('All 2 relaxed')", "relax")
    table = {row[0]: row for row in rows(page, "#relax-results")}
    assert set(table) == {"Si_rattled", "NaCl", "notes.txt"}
    assert table["NaCl"][1] == "Na4Cl4 (8)" and table["Si_rattled"][1] == "Si2 (2)"
    for name in ("Si_rattled", "NaCl"):
        status, energy, per_atom, max_force, steps, converged = table[name][2:8]
        assert status == "done" and converged == "yes" and float(max_force) <= 0.05, table[name]
        assert float(energy) < 0 and float(per_atom) < 0
    assert int(table["Si_rattled"][6]) > 0
    assert table["notes.txt"][2].startswith("not a CIF, XYZ or POSCAR file")  # and it was not sent
    assert not page.is_disabled("#relax-download")
    page.click("#relax-results tbody tr[data-index='0']")
    assert_drawn(page, "#relax-before")
    assert_drawn(page, "#relax-after")
    screenshot(page, "relax.png")


def test_predict_runs_jobs_and_shows_fields_with_units(service, page):
    open_tab(page, service.url, "predict")
    page.fill("#predict-text", NACL_POSCAR)
    page.click("#predict-submit")
    wait_for_answer(page, """(() => {
        const cells = [...document.querySelectorAll('#predict-results tbody td:nth-child(2)')].map(td => td.innerText);
        const failed = document.querySelector('#predict-results .bad');
        return failed || ['ml_egap_type', 'ml_Cv', 'ml_formation_energy_per_atom'].every(f => cells.includes(f));
    })()""", "predict")
    assert not page.query_selector("#predict-results .bad"), rows(page, "#predict-results")
    fields = {(row[0], row[1]): (row[2], row[3]) for row in rows(page, "#predict-results")}
    assert fields[("plmf", "ml_egap_type")][0] == "insulator"
    assert fields[("mfd", "ml_Cv")][1] == "kB/atom" and 2.5 < float(fields[("mfd", "ml_Cv")][0]) < 3.0
    assert fields[("plmf", "ml_ael_bulk_modulus_vrh")][1] == "GPa"
    direct = service.post("/v1/alignn/predict", data={"file": NACL_POSCAR}).json()["ml_formation_energy_per_atom"]
    shown, unit = fields[("alignn", "ml_formation_energy_per_atom")]
    assert unit == "eV/atom" and float(shown) == pytest.approx(direct, abs=1e-4)
    assert_drawn(page, "#predict-chart")
    jobs = [url for url in page.recorded.requests if "/prediction/result/" in url]
    assert len({url.rsplit("/", 1)[1] for url in jobs}) == 3  # one job per model, polled
    screenshot(page, "predict.png")


def test_status_shows_readiness_models_and_queues(service, page):
    open_tab(page, service.url, "status")
    page.wait_for_selector("#status-models tbody tr")
    page.wait_for_selector("#status-queues tbody tr")
    total = service.get("/v1/health/ready").json()["backends_total"]
    assert page.inner_text("#status-ready") == f"ready: {total} of {total} Triton models ready"
    models = {row[0]: row for row in rows(page, "#status-models")}
    assert {"forcefield", "generator/small", "alignn", "mfd", "plmf"} <= set(models)
    assert models["forcefield"][3] == "CHGNet 0.3.0"
    assert rows(page, "#status-queues")[0][0] == "total"
    screenshot(page, "status.png")


# The parsers against pymatgen: what the page sends to /v1/infer is the structure in the file.
MG_HCP = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 1 / 4]])
SPINEL = Structure.from_spacegroup("Fd-3m", Lattice.cubic(8.08), ["Mg", "Al", "O"],
                                   [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.2624, 0.2624, 0.2624]])


def same_structure(parsed: dict, expected: Structure) -> bool:
    """Same lattice and the same atoms, in any order and up to lattice translations."""
    got = Structure(parsed["cell"], parsed["numbers"], parsed["positions"], coords_are_cartesian=True)
    same = got.matches(expected, primitive_cell=False, scale=False, attempt_supercell=False)
    return same and len(got) == len(expected)


@pytest.mark.parametrize("name, text, expected", [
    ("Mg.cif", str(CifWriter(MG_HCP, symprec=0.01)), MG_HCP),
    ("MgAl2O4.cif", str(CifWriter(SPINEL, symprec=0.01)), SPINEL),
    ("MgAl2O4_P1.cif", str(CifWriter(SPINEL)), SPINEL),
    ("POSCAR", NACL_POSCAR, Structure.from_str(NACL_POSCAR, fmt="poscar")),
], ids=["hcp-symmetry-operations", "spinel-symmetry-operations", "spinel-P1", "poscar"])
def test_the_page_reads_structures_as_pymatgen_does(service, page, name, text, expected):
    page.goto(service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    parse = "async ([text, name]) => (await import('/playground/structure.js')).parseStructures(text, name)"
    parsed = page.evaluate(parse, [text, name])
    assert len(parsed) == 1 and same_structure(parsed[0], expected)


def test_unreadable_formats_say_why(service, page):
    page.goto(service.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    vasp4 = NACL_POSCAR.replace("NaCl\n", "a rock salt\n").replace("Na Cl\n", "")
    disordered = str(CifWriter(Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])))
    no_operations = ("data_x\n_cell_length_a 3.6\n_cell_length_b 3.6\n_cell_length_c 3.6\n_cell_angle_alpha 90\n"
                     "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'F m -3 m'\n"
                     "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nCu1 0 0 0\n")
    messages = page.evaluate("""async (texts) => {
        const {parseStructures} = await import('/playground/structure.js');
        return texts.map(([text, name]) => { try { parseStructures(text, name); return 'parsed'; }
                                             catch (error) { return error.message; } });
    }""", [[vasp4, "POSCAR"], [disordered, "CuAu.cif"], [no_operations, "Cu.cif"]])
    assert messages[0].startswith("POSCAR without element names (VASP 4 format)")
    assert "partly occupied" in messages[1]
    assert messages[2].startswith("CIF: space group F m -3 m without its symmetry operations")


# The API-key prompt, on the in-process app with a fake backend and MATSERVE_API_KEYS set.
@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    import uvicorn

    from gateway.app import create_app
    from matserve.generator.cif_format import to_crystallm_cif
    from matserve.settings import Settings
    from matserve.tritonserver import free_port
    from tests.gateway.fakes import FakeGeneratorTriton

    rock_salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    settings = Settings(batch_size=64, max_system_size=50, data_dir=tempfile.mkdtemp(prefix="matserve-test-"),
                        generator_small=__file__, api_keys="s3cret")
    app = create_app(settings, "unused:0", triton=FakeGeneratorTriton(to_crystallm_cif(rock_salt)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started or httpx.get(url + "/v1/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "the in-process gateway never became ready"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_with_api_keys_the_page_asks_for_one_and_sends_it(keyed_url, page):
    assert httpx.get(keyed_url + "/").status_code == 200  # the page and its files need no key
    assert httpx.get(keyed_url + "/playground/app.js").status_code == 200
    assert httpx.post(keyed_url + "/v1/generate", json={}).status_code == 401
    page.recorded.allowed_console = ("status of 401",)  # Chromium logs each refused call
    open_tab(page, keyed_url, "generate")
    page.fill("#gen-z", "4")
    page.uncheck("#gen-fe")  # the fake has no ALIGNN
    page.click("#gen-submit")
    page.wait_for_selector("#key-panel", state="visible")
    assert page.inner_text("#key-message").startswith("missing API key")
    page.fill("#key-input", "wrong")
    page.click("#key-use")
    page.wait_for_function("document.querySelector('#key-message').innerText.startsWith('invalid API key')")
    page.fill("#key-input", "s3cret")
    page.click("#key-use")
    wait_for_answer(page, "document.querySelector('#gen-results tbody tr')", "gen")
    assert page.is_hidden("#key-panel")
    assert page.evaluate("sessionStorage.getItem('matserve.apiKey')") == "s3cret"
    assert rows(page, "#gen-results")[0][1] == "Na1Cl1 Z=4"


def test_errors_show_the_apis_message(service, page):
    page.recorded.allowed_console = ("status of 400",)  # Chromium logs the refused call
    open_tab(page, service.url, "generate")
    page.fill("#gen-comp", "Xx2")
    page.click("#gen-submit")
    page.wait_for_selector("#gen-error", state="visible")
    assert page.inner_text("#gen-error") == service.post(
        "/v1/generate", json={"model": "small", "message": {"comp": "Xx2"}}).json()["error"]
