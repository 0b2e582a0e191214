"""ECG readers and the WFDB writer, on real files and on bad inputs."""

import numpy as np
import pytest
import wfdb

from ptacl_core.io.ecg import (
    EcgReadError,
    read_dicom_ecg,
    read_ecg,
    read_hl7_aecg,
    read_muse_xml,
    read_ukb_xml,
    read_wfdb,
    write_wfdb,
)
from ptacl_core.leads import LEAD_NAMES, canonical_lead_name

pytestmark = []


@pytest.mark.parametrize("record, fs, n", [("cinc2021/HR06000", 500, 5000), ("cinc2021/E07500", 500, 5000),
                                           ("cinc2021/JS20000", 500, 5000), ("ptbxl/00001_lr", 100, 1000)])
def test_real_wfdb_records_give_12_named_leads_in_mv(realdata, record, fs, n):
    ecg = read_wfdb(realdata / "ecg/wfdb" / f"{record}.hea")
    assert ecg.signal.shape == (12, n) and ecg.fs == fs
    peak_to_peak = np.ptp(ecg.signal, axis=1)
    assert np.all(peak_to_peak > 0.05) and np.all(peak_to_peak < 10.0)  # mV: neither µV nor V


def test_lower_case_unit_and_lead_order_follow_the_header(realdata):
    path = realdata / "ecg/wfdb/cinc2021/HR06000"
    raw = wfdb.rdrecord(str(path))
    assert raw.units[0] == "mv"
    ecg = read_wfdb(path)
    np.testing.assert_allclose(ecg.signal[LEAD_NAMES.index("V6")], raw.p_signal[:, raw.sig_name.index("V6")], rtol=1e-6)


def test_ptb_record_with_15_channels_selects_the_12_leads_by_name(realdata):
    path = realdata / "ecg/wfdb/ptb/s0010_re"
    raw = wfdb.rdrecord(str(path))
    assert raw.n_sig == 15
    ecg = read_wfdb(path)
    assert ecg.signal.shape == (12, 38400) and ecg.fs == 1000
    np.testing.assert_allclose(ecg.signal[LEAD_NAMES.index("aVR")], raw.p_signal[:, raw.sig_name.index("avr")], rtol=1e-6)


def test_ukb_xml_strip_and_median_beat(realdata):
    path = realdata / "ecg/ukb_xml/ukbb_scrubbed.xml"
    strip = read_ukb_xml(path)
    median = read_ukb_xml(path, part="median")
    assert strip.signal.shape == (12, 5000) and strip.fs == 500
    assert median.signal.shape == (12, 600) and median.fs == 500
    # Resolution 5 µV per count: the first lead-I sample of the strip is 21 counts = 0.105 mV.
    assert strip.signal[0, 0] == pytest.approx(0.105, abs=1e-6)
    assert read_ecg(path).signal.shape == (12, 5000)


def _write_record(folder, names, units="mV", signal=None):
    signal = np.zeros((500, len(names))) if signal is None else signal
    wfdb.wrsamp("rec", fs=250, units=[units] * len(names), sig_name=names, p_signal=signal, fmt=["16"] * len(names),
                write_dir=str(folder))
    return folder / "rec.hea"


def test_missing_lead_is_named(tmp_path):
    path = _write_record(tmp_path, list(LEAD_NAMES[:-1]), signal=np.random.default_rng(0).normal(size=(500, 11)))
    with pytest.raises(EcgReadError, match="missing lead.*V6") as error:
        read_wfdb(path)
    assert "rec.hea" in str(error.value)


def test_microvolt_record_is_converted_to_millivolts(tmp_path):
    signal = np.random.default_rng(0).normal(0, 500, size=(500, 12))  # µV
    path = _write_record(tmp_path, list(LEAD_NAMES), units="uV", signal=signal)
    ecg = read_wfdb(path)
    np.testing.assert_allclose(ecg.signal, signal.T / 1000.0, atol=2e-3)


def test_unknown_unit_is_refused(tmp_path):
    path = _write_record(tmp_path, list(LEAD_NAMES), units="mmHg", signal=np.ones((500, 12)))
    with pytest.raises(EcgReadError, match="unit 'mmHg'"):
        read_wfdb(path)


def test_truncated_signal_file_is_reported(tmp_path):
    path = _write_record(tmp_path, list(LEAD_NAMES), signal=np.ones((500, 12)))
    data = tmp_path / "rec.dat"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(EcgReadError, match="rec.hea"):
        read_wfdb(path)


def test_missing_header_and_unknown_format(tmp_path):
    with pytest.raises(EcgReadError, match="no WFDB header"):
        read_wfdb(tmp_path / "nothing.hea")
    with pytest.raises(EcgReadError, match="unknown ECG format"):
        read_ecg(tmp_path / "ecg.edf")


def test_xml_without_strip_and_broken_xml(tmp_path):
    (tmp_path / "other.xml").write_text("<CardiologyXML><RestingECG/></CardiologyXML>")
    with pytest.raises(EcgReadError, match="no <StripData>"):
        read_ukb_xml(tmp_path / "other.xml")
    (tmp_path / "broken.xml").write_text("<CardiologyXML><StripData>")
    with pytest.raises(EcgReadError, match="not readable as XML"):
        read_ukb_xml(tmp_path / "broken.xml")


def test_write_wfdb_matches_wfdb_wrsamp_byte_for_byte(tmp_path):
    rng = np.random.default_rng(1)
    signal = np.round(rng.normal(0, 0.8, size=(12, 2500)), 3)
    write_wfdb(tmp_path / "ours", signal, 500, comments=("Age: 60", "Sex: Male"))
    (tmp_path / "ref").mkdir()
    wfdb.wrsamp("ours", fs=500, units=["mV"] * 12, sig_name=list(LEAD_NAMES), d_signal=np.rint(signal.T * 1000).astype(np.int16),
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, comments=["Age: 60", "Sex: Male"],
                write_dir=str(tmp_path / "ref"))
    assert (tmp_path / "ours.dat").read_bytes() == (tmp_path / "ref/ours.dat").read_bytes()
    assert (tmp_path / "ours.hea").read_text() == (tmp_path / "ref/ours.hea").read_text()
    back = read_wfdb(tmp_path / "ours")
    np.testing.assert_allclose(back.signal, signal, atol=1e-6)


def test_write_wfdb_refuses_values_beyond_int16(tmp_path):
    with pytest.raises(ValueError, match="int16"):
        write_wfdb(tmp_path / "big", np.full((12, 10), 40.0), 500)


def test_lead_names_are_normalised():
    assert canonical_lead_name("avr") == "aVR" and canonical_lead_name("AVL") == "aVL"
    assert canonical_lead_name(" v1 ") == "V1" and canonical_lead_name("Lead II") == "II"
    assert canonical_lead_name("vx") is None


def test_nan_samples_are_refused_naming_the_lead(tmp_path):
    signal = np.random.default_rng(0).normal(size=(500, 12))
    signal[100:110, LEAD_NAMES.index("aVF")] = np.nan  # WFDB stores these as its invalid-sample value
    path = _write_record(tmp_path, list(LEAD_NAMES), signal=signal)
    with pytest.raises(EcgReadError, match="non-finite.*aVF"):
        read_wfdb(path)


def test_header_claiming_more_samples_than_the_data_holds(tmp_path):
    path = _write_record(tmp_path, list(LEAD_NAMES), signal=np.ones((500, 12)))
    lines = path.read_text().splitlines()
    assert lines[0] == "rec 12 250 500"
    lines[0] = "rec 12 250 5000"  # the header now promises 20 s; the .dat holds 2 s
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EcgReadError, match="WFDB could not read"):
        read_wfdb(path)


def _xml(tmp_path, body):
    path = tmp_path / "ecg.xml"
    path.write_text(f'<?xml version="1.0" encoding="ISO-8859-1"?><CardiologyXML><StripData>{body}</StripData></CardiologyXML>')
    return path


def _leads_xml(values_by_lead):
    return "".join(f'<WaveformData lead="{lead}">{values}</WaveformData>' for lead, values in values_by_lead.items())


def test_xml_validation(tmp_path):
    good = {lead: "1,2,3" for lead in LEAD_NAMES}
    header = "<SampleRate>500</SampleRate><Resolution>5</Resolution>"
    assert read_ukb_xml(_xml(tmp_path, header + _leads_xml(good))).signal.shape == (12, 3)
    with pytest.raises(EcgReadError, match="SampleRate or Resolution"):
        read_ukb_xml(_xml(tmp_path, "<Resolution>5</Resolution>" + _leads_xml(good)))
    with pytest.raises(EcgReadError, match="non-integer sample"):
        read_ukb_xml(_xml(tmp_path, header + _leads_xml({**good, "V2": "1,x,3"})))
    with pytest.raises(EcgReadError, match="different lengths"):
        read_ukb_xml(_xml(tmp_path, header + _leads_xml({**good, "V2": "1,2"})))
    with pytest.raises(EcgReadError, match="missing lead.*aVF"):
        read_ukb_xml(_xml(tmp_path, header + _leads_xml({k: v for k, v in good.items() if k != "aVF"})))


@pytest.mark.parametrize("rate", ["0", "-500", "inf", "nan"])
def test_xml_with_a_nonsensical_sampling_rate_is_refused(tmp_path, rate):
    good = {lead: "1,2,3" for lead in LEAD_NAMES}
    with pytest.raises(EcgReadError, match="sampling rate .* not a positive finite number"):
        read_ukb_xml(_xml(tmp_path, f"<SampleRate>{rate}</SampleRate><Resolution>5</Resolution>" + _leads_xml(good)))
    with pytest.raises(EcgReadError, match="Resolution .* not a positive finite number"):
        read_ukb_xml(_xml(tmp_path, "<SampleRate>500</SampleRate><Resolution>-5</Resolution>" + _leads_xml(good)))


# --- GE MUSE XML ---------------------------------------------------------------------------------------------

MUSE = ("ecg/muse_xml/muse_ecg1.xml", "ecg/muse_xml/muse_ecg2.xml")


def _lead(ecg, name):
    return ecg.signal[LEAD_NAMES.index(name)].astype(np.float64)


@pytest.mark.parametrize("name", MUSE)
def test_muse_rhythm_and_median_read_with_the_four_limb_leads_derived(realdata, name):
    ecg = read_ecg(realdata / name)  # chosen by the root element, the DOCTYPE's DTD never fetched
    assert ecg.signal.shape == (12, 5000) and ecg.fs == 500.0
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    one, two = _lead(ecg, "I"), _lead(ecg, "II")
    np.testing.assert_allclose(_lead(ecg, "III"), two - one, atol=1e-5)  # Einthoven
    np.testing.assert_allclose(_lead(ecg, "aVR") + _lead(ecg, "aVL") + _lead(ecg, "aVF"), 0.0, atol=1e-5)  # Goldberger
    np.testing.assert_allclose(_lead(ecg, "aVF"), two - one / 2, atol=1e-5)
    peak_to_peak = np.ptp(ecg.signal, axis=1)
    assert np.all(peak_to_peak > 0.05) and np.all(peak_to_peak < 10.0)  # 4.88 µV per bit -> mV
    median = read_muse_xml(realdata / name, "median")
    assert median.signal.shape == (12, 600) and median.fs == 500.0


def test_muse_samples_are_the_base64_int16_times_the_amplitude_per_bit(realdata):
    """Lead V2 by hand: base64 -> little-endian int16 -> x 4.88 µV."""
    import base64
    import xml.etree.ElementTree as ET

    root = ET.parse(realdata / MUSE[0]).getroot()
    rhythm = next(w for w in root.findall("Waveform") if w.findtext("WaveformType") == "Rhythm")
    v2 = next(d for d in rhythm.findall("LeadData") if d.findtext("LeadID") == "V2")
    counts = np.frombuffer(base64.b64decode("".join(v2.findtext("WaveFormData").split())), dtype="<i2")
    expected = counts * float(v2.findtext("LeadAmplitudeUnitsPerBit")) / 1000.0
    np.testing.assert_allclose(_lead(read_ecg(realdata / MUSE[0]), "V2"), expected, rtol=1e-6)


def _edited_muse(realdata, tmp_path, edit, name="edited.xml"):
    """A copy of a MUSE file with ``edit`` applied to its Rhythm waveform (the part read by default)."""
    text = (realdata / MUSE[0]).read_text(encoding="iso-8859-1")
    rhythm = text.index("<WaveformType>Rhythm</WaveformType>")
    path = tmp_path / name
    path.write_text(text[:rhythm] + edit(text[rhythm:]), encoding="iso-8859-1")
    return path


def test_muse_bad_inputs_name_the_file_and_the_problem(realdata, tmp_path):
    import re

    def truncate_v1(text):  # cut the first lead V1's base64 short (a broken transfer)
        start = text.index("<LeadID>V1</LeadID>")
        data = text.index("<WaveFormData>", start) + len("<WaveFormData>")
        return text[:data] + text[data:data + 400] + text[text.index("</WaveFormData>", data):]

    cases = [
        (truncate_v1, "lead V1: .*(bytes of samples, the header says|not valid base64)"),
        (lambda t: t.replace("<LeadID>V3</LeadID>", "<LeadID>X9</LeadID>"), "missing lead.*V3"),
        (lambda t: t.replace("<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>",
                             "<LeadAmplitudeUnits>FURLONGS</LeadAmplitudeUnits>", 1), "unknown LeadAmplitudeUnits 'FURLONGS'"),
        (lambda t: t.replace("<WaveformType>Rhythm</WaveformType>", "<WaveformType>Other</WaveformType>"),
         "no <Waveform> of type Rhythm"),
        (lambda t: re.sub(r"<SampleBase>500</SampleBase>", "<SampleBase>-500</SampleBase>", t, count=1), "sampling rate"),
        (lambda t: t.replace("<WaveFormData>", "<WaveFormData>!!", 1), "not valid base64"),
    ]
    for index, (edit, message) in enumerate(cases):
        path = _edited_muse(realdata, tmp_path, edit, f"bad{index}.xml")
        with pytest.raises(EcgReadError, match=message) as caught:
            read_ecg(path)
        assert str(path) in str(caught.value)


def test_xml_entity_expansion_is_refused_before_parsing(tmp_path):
    bomb = tmp_path / "bomb.xml"
    entities = "".join(f'<!ENTITY e{i} "&e{i - 1};&e{i - 1};&e{i - 1};&e{i - 1};">' for i in range(1, 12))
    bomb.write_text(f'<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY e0 "lol">{entities}]><RestingECG>&e11;</RestingECG>')
    with pytest.raises(EcgReadError, match="declares entities"):
        read_ecg(bomb)
    external = tmp_path / "external.xml"
    external.write_text('<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        "<RestingECG>&x;</RestingECG>")
    with pytest.raises(EcgReadError, match="declares entities"):
        read_ecg(external)


def test_xml_is_recognised_by_its_root_element_not_its_extension(realdata, tmp_path):
    renamed = tmp_path / "exported_ecg.txt"
    renamed.write_bytes((realdata / MUSE[1]).read_bytes())
    assert read_ecg(renamed).derived_leads == ("III", "aVR", "aVL", "aVF")
    ukb = tmp_path / "ukb_export.dat.xml"
    ukb.write_bytes((realdata / "ecg/ukb_xml/ukbb_scrubbed.xml").read_bytes())
    assert read_ecg(ukb).derived_leads == ()
    other = tmp_path / "other.xml"
    other.write_text("<?xml version='1.0'?><SomethingElse/>")
    with pytest.raises(EcgReadError, match="no <StripData>"):
        read_ecg(other)


# --- DICOM 12-lead ECG waveform ----------------------------------------------------------------------------

def _dicom_ecg_path():
    from pydicom.data import get_testdata_file

    return get_testdata_file("waveform_ecg.dcm")  # a real 12-lead ECG that pydicom ships


def test_dicom_ecg_rhythm_and_median_groups_read_in_mv():
    import pydicom

    path = _dicom_ecg_path()
    ecg = read_ecg(path)
    assert ecg.signal.shape == (12, 10000) and ecg.fs == 1000.0 and ecg.derived_leads == ()
    dataset = pydicom.dcmread(path)
    raw = dataset.waveform_array(0)  # pydicom's own scaling, in µV for this file
    np.testing.assert_allclose(ecg.signal[LEAD_NAMES.index("V3")], raw[:, 8] / 1000.0, rtol=1e-6)
    one, two, three = (ecg.signal[LEAD_NAMES.index(n)].astype(np.float64) for n in ("I", "II", "III"))
    assert np.corrcoef(three, two - one)[0, 1] > 0.99  # stored leads obey Einthoven (within the device's rounding)
    peak_to_peak = np.ptp(ecg.signal, axis=1)
    assert np.all(peak_to_peak > 0.05) and np.all(peak_to_peak < 10.0)
    assert read_dicom_ecg(path, "median").signal.shape == (12, 1200)


def test_dicom_ecg_is_recognised_by_content_and_bad_files_are_named(tmp_path):
    import shutil

    import pydicom

    renamed = tmp_path / "ecg_export"  # no extension: the DICM signature decides
    shutil.copy(_dicom_ecg_path(), renamed)
    assert read_ecg(renamed).signal.shape == (12, 10000)
    dataset = pydicom.dcmread(_dicom_ecg_path())
    dataset.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivityUnitsSequence[0].CodeValue = "furlong"
    bad_units = tmp_path / "units.dcm"
    dataset.save_as(bad_units)
    with pytest.raises(EcgReadError, match="sensitivity units 'furlong'"):
        read_ecg(bad_units)
    dataset = pydicom.dcmread(_dicom_ecg_path())
    for group in dataset.WaveformSequence:
        group.ChannelDefinitionSequence[1].ChannelSourceSequence[0].CodeMeaning = "Lead X"
    no_lead_ii = tmp_path / "no_ii.dcm"
    dataset.save_as(no_lead_ii)
    with pytest.raises(EcgReadError, match=r"no_ii.dcm: missing lead\(s\) II"):
        read_ecg(no_lead_ii)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(open(_dicom_ecg_path(), "rb").read()[:20000])
    with pytest.raises(EcgReadError, match="truncated.dcm"):
        read_ecg(truncated)
    image = tmp_path / "image.dcm"
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("CT_small.dcm"), image)
    with pytest.raises(EcgReadError, match="no WaveformSequence"):
        read_ecg(image)


def test_dicom_limb_leads_are_derived_when_only_i_and_ii_are_stored(tmp_path):
    """A device that stores 8 leads: III, aVR, aVL and aVF are computed from I and II."""
    import pydicom

    dataset = pydicom.dcmread(_dicom_ecg_path())
    for group in dataset.WaveformSequence:
        for index in (2, 3, 4, 5):  # III, aVR, aVL, aVF relabelled as unknown channels
            group.ChannelDefinitionSequence[index].ChannelSourceSequence[0].CodeMeaning = f"Aux {index}"
    path = tmp_path / "eight.dcm"
    dataset.save_as(path)
    ecg = read_ecg(path)
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    one, two = (ecg.signal[LEAD_NAMES.index(n)].astype(np.float64) for n in ("I", "II"))
    np.testing.assert_allclose(ecg.signal[LEAD_NAMES.index("aVL")], one - two / 2, atol=1e-5)


# --- HL7 aECG (FDA annotated ECG, HL7 v3) ------------------------------------------------------------------
# No public sample file could be fetched here, so the test files are written from the published HL7 v3 aECG
# structure (AnnotatedECG > component > series > component > sequenceSet > component > sequence, SLIST_PQ values
# with origin, scale and digits; a GLIST time sequence with its increment).

def write_aecg(path, signal_mv, fs, leads=LEAD_NAMES, scale_uv=1.0, increment=None, units=("uV", "uV"),
               median=None):
    """An HL7 v3 aECG file holding ``signal_mv`` (leads x samples) as a RHYTHM series (and ``median`` as a
    REPRESENTATIVE_BEAT derived series)."""
    def sequence_set(signal):
        parts = ['<component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>'
                 '<value xsi:type="GLIST_TS"><head value="20210510131518.000"/>'
                 f'<increment value="{increment if increment is not None else 1.0 / fs}" unit="s"/></value></sequence></component>']
        for lead, row in zip(leads, signal, strict=True):
            digits = " ".join(str(int(v)) for v in np.round(np.asarray(row) * 1000.0 / scale_uv))
            parts.append(f'<component><sequence><code code="MDC_ECG_LEAD_{lead.upper()}" codeSystem="2.16.840.1.113883.6.24"/>'
                         f'<value xsi:type="SLIST_PQ"><origin value="0" unit="{units[0]}"/>'
                         f'<scale value="{scale_uv}" unit="{units[1]}"/><digits>{digits}</digits></value></sequence></component>')
        return "<sequenceSet>" + "".join(parts) + "</sequenceSet>"

    derived = ""
    if median is not None:
        derived = ('<derivation><derivedSeries><code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>'
                   f"<component>{sequence_set(median)}</component></derivedSeries></derivation>")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>'
                    '<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                    '<id root="2.16.840.1.113883.3.1"/><code code="93000" codeSystem="2.16.840.1.113883.6.12"/>'
                    '<component><series><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>'
                    f"<component>{sequence_set(signal_mv)}</component>{derived}</series></component></AnnotatedECG>")
    return path


def test_hl7_aecg_reads_to_the_same_array_as_the_equivalent_wfdb(realdata, tmp_path):
    wfdb_ecg = read_wfdb(realdata / "ecg/wfdb/cinc2021/E07500.hea")
    median = wfdb_ecg.signal[:, :300]
    path = write_aecg(tmp_path / "record.xml", wfdb_ecg.signal, wfdb_ecg.fs, median=median)
    ecg = read_ecg(path)  # recognised by its root element
    assert ecg.fs == pytest.approx(wfdb_ecg.fs) and ecg.signal.shape == wfdb_ecg.signal.shape
    np.testing.assert_allclose(ecg.signal, wfdb_ecg.signal, atol=0.5e-3 + 1e-6)  # digits of 1 µV
    assert read_hl7_aecg(path, "median").signal.shape == (12, 300)
    eight = write_aecg(tmp_path / "eight.xml", wfdb_ecg.signal[[0, 1, 6, 7, 8, 9, 10, 11]], wfdb_ecg.fs,
                       leads=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"), scale_uv=2.5, units=("mV", "uV"))
    derived = read_ecg(eight)
    assert derived.derived_leads == ("III", "aVR", "aVL", "aVF")
    one, two = (derived.signal[LEAD_NAMES.index(n)].astype(np.float64) for n in ("I", "II"))
    np.testing.assert_allclose(derived.signal[LEAD_NAMES.index("III")], two - one, atol=1e-5)
    ms = write_aecg(tmp_path / "ms.xml", wfdb_ecg.signal, wfdb_ecg.fs, increment=2)  # 2 ms written in s: rejected
    with pytest.raises(EcgReadError, match="sampling rate"):
        read_ecg(ms)


def test_hl7_aecg_bad_inputs_name_the_file_and_the_problem(tmp_path):
    signal = np.random.default_rng(0).normal(0, 0.3, size=(12, 500))
    cases = [
        (dict(leads=("I", "VX", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")), r"missing lead\(s\) II"),
        (dict(leads=("I", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "V6")),
         "lead V6 is stored twice with different samples"),
        (dict(units=("uV", "furlong")), "units .*expected uV, mV or V"),
        (dict(increment=0), "sampling rate"),
    ]
    for index, (options, message) in enumerate(cases):
        path = write_aecg(tmp_path / f"bad{index}.xml", signal, 250.0, **options)
        with pytest.raises(EcgReadError, match=message) as caught:
            read_ecg(path)
        assert f"bad{index}.xml" in str(caught.value)
    broken = write_aecg(tmp_path / "digits.xml", signal, 250.0)
    broken.write_text(broken.read_text().replace("<digits>", "<digits>12 x ", 1))
    with pytest.raises(EcgReadError, match="non-numeric digits"):
        read_ecg(broken)


@pytest.mark.parametrize("source", ["muse", "dicom"])
def test_muse_and_dicom_read_to_the_same_array_as_the_equivalent_wfdb(realdata, tmp_path, source):
    """Each format, written out as WFDB (µV resolution) and read back, gives the same (12, L) mV array."""
    ecg = read_ecg(realdata / MUSE[0]) if source == "muse" else read_ecg(_dicom_ecg_path())
    write_wfdb(tmp_path / "same", ecg.signal, ecg.fs)
    again = read_wfdb(tmp_path / "same.hea")
    assert again.fs == ecg.fs and again.signal.shape == ecg.signal.shape
    np.testing.assert_allclose(again.signal, ecg.signal, atol=0.5e-3 + 1e-6)


def test_hl7_aecg_with_an_entity_expansion_attack_is_refused(tmp_path):
    path = write_aecg(tmp_path / "attack.xml", np.zeros((12, 100)), 250.0)
    text = path.read_text().replace('<AnnotatedECG xmlns', '<!DOCTYPE AnnotatedECG [<!ENTITY a "aaaaaaaaaa">'
                                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><AnnotatedECG xmlns', 1)
    path.write_text(text.replace("<digits>", "<digits>&b;", 1))
    with pytest.raises(EcgReadError, match="attack.xml: the XML declares entities"):
        read_ecg(path)


@pytest.mark.parametrize("rate, message", [("-500", "not a positive finite number"), ("nan", "not a positive finite number"),
                                           ("1e9", "implausible"), ("0.001", "implausible"), ("fast", "not a number")])
def test_a_wfdb_header_with_a_nonsense_rate_is_refused_not_replaced(tmp_path, rate, message):
    """wfdb would read -500 or nan as its 250 Hz default and cache a time-stretched ECG; the header is checked first."""
    write_wfdb(tmp_path / "r", np.zeros((12, 2500), dtype=np.float32) + 0.1, 500.0)
    header = tmp_path / "r.hea"
    first, *rest = header.read_text().splitlines()
    fields = first.split()
    fields[2] = rate
    header.write_text("\n".join([" ".join(fields), *rest]) + "\n")
    with pytest.raises(EcgReadError, match=message) as error:
        read_ecg(header)
    assert "r.hea" in str(error.value)


def test_a_negative_adc_gain_is_refused(tmp_path):
    write_wfdb(tmp_path / "g", np.zeros((12, 2500), dtype=np.float32) + 0.1, 500.0)
    header = tmp_path / "g.hea"
    lines = header.read_text().splitlines()
    fields = lines[1].split()
    fields[2] = "-" + fields[2]  # the gain field of the first signal line (e.g. 1000/mV)
    lines[1] = " ".join(fields)
    header.write_text("\n".join(lines) + "\n")
    with pytest.raises(EcgReadError, match="ADC gain"):
        read_ecg(header)


def test_an_unknown_xml_encoding_is_a_named_error(tmp_path):
    path = tmp_path / "odd.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="x-klingon"?><RestingECG/>')
    with pytest.raises(EcgReadError, match="odd.xml: not readable as XML"):
        read_ecg(path)
