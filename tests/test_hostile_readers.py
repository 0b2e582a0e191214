"""Hostile and careless input to the ECG and CMR readers (issue 20, sections 3 and 4): scale factors that would invert
or flatten a signal, a lead or a rate stored twice, XML entities in any encoding, XML routed by its decoded root
element, DICOM sizes checked before decoding, and header defects that used to escape as bare Python errors."""

from __future__ import annotations

import codecs
import copy
import os
import re
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import wfdb
from pydicom.data import get_testdata_file
from pydicom.sequence import Sequence
from test_ecg_io import MUSE, write_aecg  # the aECG writer's and the MUSE samples' home

from ptacl_core.io.cmr import CmrReadError, read_dicom_series, read_nifti_cine, read_ukb_cmr_zip
from ptacl_core.io.ecg import (
    EcgReadError,
    dicom_waveform,
    read_ecg,
    read_hl7_aecg,
    read_muse_xml,
    read_ukb_xml,
    write_wfdb,
)
from ptacl_core.io.ecg.xml_safety import xml_kind
from ptacl_core.leads import LEAD_NAMES

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # Sunnybrook's UIDs

SUNNYBROOK_DICOM = "cmr/sunnybrook/dicom_slice05"
RNG = np.random.default_rng(20)


def _signal(n: int = 500) -> np.ndarray:
    """(12, n) mV of noise on every lead, rounded to the µV the writers store."""
    return np.round(RNG.normal(0, 0.4, size=(12, n)), 3)


def _ukb_xml(path: Path, body_leads: str, rate: str = "500", resolution: str = "5", extra: str = "",
             encoding: str = "ISO-8859-1") -> Path:
    """A CardioSoft XML export holding a StripData section (``extra`` goes just before it)."""
    path.write_text(f'<?xml version="1.0" encoding="{encoding}"?><CardiologyXML>{extra}<StripData>'
                    f"<SampleRate>{rate}</SampleRate><Resolution>{resolution}</Resolution>{body_leads}"
                    "</StripData></CardiologyXML>", encoding="latin-1")
    return path


def _leads(values: dict[str, str]) -> str:
    return "".join(f'<WaveformData lead="{lead}">{text}</WaveformData>' for lead, text in values.items())


GOOD_LEADS = {lead: f"{i},{2 * i},{3 * i}" for i, lead in enumerate(LEAD_NAMES, 1)}


# --- XML: entity declarations refused by the parser, in any encoding ------------------------------------------

ENCODINGS = {  # name in the XML declaration, and the bytes of the text
    "utf-8-bom": ("UTF-8", lambda text: codecs.BOM_UTF8 + text.encode("utf-8")),
    "utf-16-le-bom": ("UTF-16", lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
    "utf-16-be-bom": ("UTF-16", lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
    "utf-16-le": ("UTF-16LE", lambda text: text.encode("utf-16-le")),
    "utf-16-be": ("UTF-16BE", lambda text: text.encode("utf-16-be")),
}


def _reencoded(source: Path, target: Path, encoding: str) -> Path:
    """``source`` (an XML file in an 8-bit or UTF-8 encoding) written in ``encoding`` (a key of ENCODINGS), its XML
    declaration saying so."""
    raw = source.read_bytes()
    declared = re.search(rb'encoding=["\']([\w.-]+)["\']', raw[:200])
    text = raw.decode(declared.group(1).decode() if declared else "utf-8")
    name, encode = ENCODINGS[encoding]
    if declared:
        text = re.sub(r'encoding=["\'][\w.-]+["\']', f'encoding="{name}"', text, count=1)
    target.write_bytes(encode(text))
    return target


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_an_internal_entity_is_refused_in_any_encoding(tmp_path, encoding):
    """The old guard searched the bytes for ``<!ENTITY``: in UTF-16 it never matched, and &r; made 3.4 read as 34."""
    plain = _ukb_xml(tmp_path / "plain.xml", _leads(GOOD_LEADS), resolution="&r;")
    text = plain.read_text(encoding="latin-1").replace("<CardiologyXML>", '<!DOCTYPE CardiologyXML [<!ENTITY r "50">]>'
                                                       "<CardiologyXML>", 1)
    plain.write_text(text, encoding="latin-1")
    hostile = _reencoded(plain, tmp_path / f"{encoding}.xml", encoding)
    assert b"<!ENTITY" not in hostile.read_bytes() or encoding == "utf-8-bom"
    with pytest.raises(EcgReadError, match=f"{encoding}.xml: the XML declares entities"):
        read_ecg(hostile)


@pytest.mark.parametrize("encoding", ["utf-16-le-bom", "utf-16-be"])
def test_a_billion_laughs_in_utf16_is_refused(tmp_path, encoding):
    entities = "".join(f'<!ENTITY e{i} "&e{i - 1};&e{i - 1};&e{i - 1};&e{i - 1};">' for i in range(1, 12))
    plain = tmp_path / "bomb.xml"
    plain.write_text(f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE RestingECG [<!ENTITY e0 "lol">{entities}]>'
                     "<RestingECG>&e11;</RestingECG>")
    with pytest.raises(EcgReadError, match="declares entities"):
        read_ecg(_reencoded(plain, tmp_path / "bomb16.xml", encoding))


@pytest.mark.parametrize("declaration", ['<!ENTITY % p SYSTEM "evil.dtd"> %p;', '<!ENTITY logo SYSTEM "x.gif" NDATA gif>',
                                         '<!ENTITY x SYSTEM "file:///etc/passwd">'])
def test_parameter_unparsed_and_external_entities_are_refused(tmp_path, declaration):
    path = _ukb_xml(tmp_path / "decl.xml", _leads(GOOD_LEADS))
    path.write_text(path.read_text(encoding="latin-1").replace(
        "<CardiologyXML>", f'<!DOCTYPE CardiologyXML [<!NOTATION gif SYSTEM "image/gif">{declaration}]><CardiologyXML>',
        1), encoding="latin-1")
    with pytest.raises(EcgReadError, match="decl.xml: the XML declares entities"):
        read_ukb_xml(path)


def test_entity_text_in_a_comment_or_cdata_is_just_text(tmp_path):
    """The old byte search refused a valid file whose comment or CDATA mentions ``<!ENTITY``."""
    plain = read_ukb_xml(_ukb_xml(tmp_path / "plain.xml", _leads(GOOD_LEADS)))
    for name, extra in (("comment", '<!-- a DTD would say <!ENTITY x "y"> here -->'),
                        ("cdata", '<Note><![CDATA[<!ENTITY x "y"> and <!DOCTYPE>]]></Note>')):
        path = _ukb_xml(tmp_path / f"{name}.xml", _leads(GOOD_LEADS), extra=extra)
        assert b"<!ENTITY" in path.read_bytes()
        ecg = read_ecg(path)
        np.testing.assert_array_equal(ecg.signal, plain.signal)
        assert ecg.fs == plain.fs


def test_an_external_dtd_is_not_fetched(tmp_path):
    """A DTD beside the file declaring &r; is not loaded: the reference stays undefined (a named error), never 50."""
    (tmp_path / "evil.dtd").write_text('<!ENTITY r "50">')
    path = _ukb_xml(tmp_path / "external.xml", _leads(GOOD_LEADS), resolution="&r;")
    path.write_text(path.read_text(encoding="latin-1").replace(
        "<CardiologyXML>", '<!DOCTYPE CardiologyXML SYSTEM "evil.dtd"><CardiologyXML>', 1), encoding="latin-1")
    with pytest.raises(EcgReadError, match="external.xml: not readable as XML .*undefined entity"):
        read_ecg(path)


# --- XML: routed by the decoded root element -------------------------------------------------------------------

def _aecg(folder: Path) -> Path:
    return write_aecg(folder / "aecg.xml", _signal(), 500.0, median=_signal(300))


def _ukb(folder: Path) -> Path:
    median = _leads({lead: "5,4,3,2" for lead in LEAD_NAMES})
    return _ukb_xml(folder / "ukb.xml", _leads(GOOD_LEADS), extra="<RestingECGMeasurements><MedianSamples><SampleRate>500"
                                                                 f"</SampleRate><Resolution>5</Resolution>{median}"
                                                                 "</MedianSamples></RestingECGMeasurements>")


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("fmt, kind", [("aecg", "aecg"), ("ukb", "ukb")])
def test_each_xml_format_reencoded_reads_the_same_signal(tmp_path, fmt, kind, encoding):
    original = {"aecg": _aecg, "ukb": _ukb}[fmt](tmp_path)
    _assert_same_reading(original, _reencoded(original, tmp_path / f"again.{encoding}", encoding), kind)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("name, kind", [(MUSE[0], "muse"), ("ecg/ukb_xml/ukbb_scrubbed.xml", "ukb")])
def test_each_real_xml_file_reencoded_reads_the_same_signal(realdata, tmp_path, name, kind, encoding):
    _assert_same_reading(realdata / name, _reencoded(realdata / name, tmp_path / f"again.{encoding}", encoding), kind)


def _assert_same_reading(original: Path, again: Path, kind: str) -> None:
    """``again`` (another encoding, and an extension that says nothing) routes and reads exactly as ``original``."""
    assert xml_kind(again) == kind == xml_kind(original)
    reader = {"muse": read_muse_xml, "ukb": read_ukb_xml, "aecg": read_hl7_aecg}[kind]
    for part in ("strip", "median"):
        first, second = reader(original, part), reader(again, part)
        np.testing.assert_array_equal(second.signal, first.signal)
        assert second.fs == first.fs and second.derived_leads == first.derived_leads
    np.testing.assert_array_equal(read_ecg(again).signal, read_ecg(original).signal)


def test_a_namespace_prefixed_aecg_root_is_routed_to_the_aecg_reader(tmp_path):
    original = _aecg(tmp_path)
    text = original.read_text().replace('<AnnotatedECG xmlns="urn:hl7-org:v3"', '<hl7:AnnotatedECG xmlns:hl7="urn:hl7-org:v3" '
                                        'xmlns="urn:hl7-org:v3"', 1).replace("</AnnotatedECG>", "</hl7:AnnotatedECG>")
    prefixed = tmp_path / "prefixed.xml"
    prefixed.write_text(text)
    assert xml_kind(prefixed) == "aecg"
    np.testing.assert_array_equal(read_ecg(prefixed).signal, read_ecg(original).signal)


# --- A lead, a rate or a section stored twice --------------------------------------------------------------------

def test_a_muse_lead_stored_twice_is_refused_unless_both_copies_are_identical(realdata, tmp_path):
    text = (realdata / MUSE[0]).read_text(encoding="iso-8859-1")
    rhythm = text.index("<WaveformType>Rhythm</WaveformType>")
    head, tail = text[:rhythm], text[rhythm:]
    different = tmp_path / "different.xml"
    different.write_text(head + tail.replace("<LeadID>V1</LeadID>", "<LeadID>V2</LeadID>", 1), encoding="iso-8859-1")
    with pytest.raises(EcgReadError, match="different.xml: lead V2 is stored twice with different samples"):
        read_ecg(different)
    start = tail.rindex("<LeadData>", 0, tail.index("<LeadID>V2</LeadID>"))
    end = tail.index("</LeadData>", start) + len("</LeadData>")
    identical = tmp_path / "identical.xml"
    identical.write_text(head + tail[:end] + tail[start:end] + tail[end:], encoding="iso-8859-1")
    assert identical.read_text(encoding="iso-8859-1").count("<LeadID>V2</LeadID>") == text.count("<LeadID>V2</LeadID>") + 1
    np.testing.assert_array_equal(read_ecg(identical).signal, read_ecg(realdata / MUSE[0]).signal)


def test_two_muse_rhythm_waveforms_are_refused(realdata, tmp_path):
    text = (realdata / MUSE[0]).read_text(encoding="iso-8859-1")
    rhythm = text.index("<WaveformType>Rhythm</WaveformType>")
    start = text.rindex("<Waveform>", 0, rhythm)
    end = text.index("</Waveform>", rhythm) + len("</Waveform>")
    twice = tmp_path / "twice.xml"
    second = text[start:end].replace("<SampleBase>500</SampleBase>", "<SampleBase>250</SampleBase>", 1)
    twice.write_text(text[:end] + second + text[end:], encoding="iso-8859-1")
    with pytest.raises(EcgReadError, match="twice.xml: 2 <Waveform> elements of type Rhythm: ambiguous"):
        read_ecg(twice)
    assert read_muse_xml(twice, "median").signal.shape == (12, 600)  # the median beat is still one


def test_an_aecg_with_two_time_sequences_of_different_rates_is_refused(tmp_path):
    path = write_aecg(tmp_path / "rates.xml", _signal(), 500.0)
    second = ('<component><sequence><code code="TIME_RELATIVE" codeSystem="2.16.840.1.113883.5.4"/>'
              '<value xsi:type="GLIST_PQ"><head value="0" unit="s"/><increment value="{}" unit="s"/></value>'
              "</sequence></component>")
    text = path.read_text()
    path.write_text(text.replace("<sequenceSet>", "<sequenceSet>" + second.format(0.001), 1))
    with pytest.raises(EcgReadError, match=r"rates.xml: .*time sequences with different rates \(TIME_RELATIVE: 1000 Hz, "
                                           r"TIME_ABSOLUTE: 500 Hz\): ambiguous"):
        read_ecg(path)
    same = tmp_path / "same.xml"
    same.write_text(text.replace("<sequenceSet>", "<sequenceSet>" + second.format(0.002), 1))
    assert read_ecg(same).fs == 500.0


def test_an_aecg_lead_stored_twice_is_kept_once_only_when_identical(tmp_path):
    signal = _signal()
    once = read_ecg(write_aecg(tmp_path / "once.xml", signal, 500.0))
    twice = write_aecg(tmp_path / "twice.xml", np.vstack([signal, signal[7:8]]), 500.0, leads=(*LEAD_NAMES, "V2"))
    np.testing.assert_array_equal(read_ecg(twice).signal, once.signal)
    changed = write_aecg(tmp_path / "changed.xml", np.vstack([signal, signal[7:8] + 0.1]), 500.0, leads=(*LEAD_NAMES, "V2"))
    with pytest.raises(EcgReadError, match="changed.xml: lead V2 is stored twice with different samples"):
        read_ecg(changed)


def test_two_aecg_rhythm_series_are_refused(tmp_path):
    path = write_aecg(tmp_path / "series.xml", _signal(), 500.0)
    text = path.read_text()
    start = text.index("<component><series>")
    end = text.index("</series></component>") + len("</series></component>")
    path.write_text(text[:end] + text[start:end] + text[end:])
    with pytest.raises(EcgReadError, match="series.xml: 2 series coded RHYTHM: ambiguous"):
        read_ecg(path)


def test_a_ukb_lead_stored_twice_is_kept_once_only_when_identical(tmp_path):
    once = read_ecg(_ukb_xml(tmp_path / "once.xml", _leads(GOOD_LEADS)))
    twice = _ukb_xml(tmp_path / "twice.xml", _leads(GOOD_LEADS) + _leads({"V3": GOOD_LEADS["V3"]}))
    np.testing.assert_array_equal(read_ecg(twice).signal, once.signal)
    changed = _ukb_xml(tmp_path / "changed.xml", _leads(GOOD_LEADS) + _leads({"V3": "7,7,7"}))  # the last used to win
    with pytest.raises(EcgReadError, match="changed.xml: lead V3 is stored twice with different samples"):
        read_ecg(changed)


def test_two_ukb_strips_are_refused(tmp_path):
    path = _ukb_xml(tmp_path / "strips.xml", _leads(GOOD_LEADS))
    text = path.read_text(encoding="latin-1")
    strip = text[text.index("<StripData>"):text.index("</StripData>") + len("</StripData>")]
    path.write_text(text.replace("</CardiologyXML>", f"<Second>{strip}</Second></CardiologyXML>"), encoding="latin-1")
    with pytest.raises(EcgReadError, match="strips.xml: 2 <StripData> elements: ambiguous"):
        read_ecg(path)


def _wfdb_record(folder: Path, names: list[str], signal: np.ndarray) -> Path:
    """A WFDB record of ``signal`` (channels x samples) named ``names``, which may repeat (wfdb's writer refuses
    that, a hand-edited header does not)."""
    unique = [f"{name}_{index}" for index, name in enumerate(names)]
    wfdb.wrsamp("rec", fs=500, units=["mV"] * len(names), sig_name=unique, p_signal=signal.T, fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names), write_dir=str(folder))
    header = folder / "rec.hea"
    lines = header.read_text().splitlines()
    lines[1:len(names) + 1] = [line.rsplit(" ", 1)[0] + f" {name}" for line, name in zip(lines[1:], names, strict=False)]
    header.write_text("\n".join(lines) + "\n")
    return header


def test_a_wfdb_lead_stored_twice_is_kept_once_only_when_identical(tmp_path):
    signal = _signal()
    (tmp_path / "once").mkdir()
    (tmp_path / "twice").mkdir()
    (tmp_path / "changed").mkdir()
    once = read_ecg(_wfdb_record(tmp_path / "once", list(LEAD_NAMES), signal))
    twice = _wfdb_record(tmp_path / "twice", [*LEAD_NAMES, "II"], np.vstack([signal, signal[1:2]]))
    np.testing.assert_array_equal(read_ecg(twice).signal, once.signal)
    changed = _wfdb_record(tmp_path / "changed", [*LEAD_NAMES, "II"], np.vstack([signal, -signal[1:2]]))
    with pytest.raises(EcgReadError, match="rec.hea: lead II is stored twice with different samples"):
        read_ecg(changed)


def test_a_zero_wfdb_gain_is_refused_not_read_as_200(tmp_path):
    """WFDB writes an uncalibrated signal with gain 0; wfdb reads it as 200 per mV: 0.1 mV became 0.5 mV."""
    write_wfdb(tmp_path / "g", np.zeros((12, 2500), dtype=np.float32) + 0.1, 500.0)
    header = tmp_path / "g.hea"
    lines = header.read_text().splitlines()
    fields = lines[3].split()
    fields[2] = "0(0)/mV"  # lead III
    lines[3] = " ".join(fields)
    header.write_text("\n".join(lines) + "\n")
    with pytest.raises(EcgReadError, match="g.hea: channel 'III': ADC gain 0 \\(uncalibrated"):
        read_ecg(header)


# --- DICOM ECG: factors, duplicates, sizes and named errors ------------------------------------------------------

def _dicom() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))


def _saved(dataset: pydicom.Dataset, path: Path) -> Path:
    dataset.save_as(path)
    return path


@pytest.mark.parametrize("keyword", ["ChannelSensitivity", "ChannelSensitivityCorrectionFactor"])
@pytest.mark.parametrize("value", ["-1.25", "0"])
def test_a_negative_or_zero_dicom_channel_factor_is_refused(tmp_path, keyword, value):
    dataset = _dicom()
    setattr(dataset.WaveformSequence[0].ChannelDefinitionSequence[3], keyword, value)  # lead aVR of the rhythm
    path = _saved(dataset, tmp_path / "factor.dcm")
    with pytest.raises(EcgReadError, match=f"factor.dcm: channel 'Lead aVR': {keyword} .* not a positive finite number"):
        read_ecg(path)


def test_a_dicom_lead_stored_twice_is_kept_once_only_when_identical(tmp_path):
    original = read_ecg(get_testdata_file("waveform_ecg.dcm"))
    for name, change in (("identical.dcm", 0), ("changed.dcm", 1)):
        dataset = _dicom()
        group = dataset.WaveformSequence[0]
        raw = np.frombuffer(group.WaveformData, dtype="<i2").reshape(int(group.NumberOfWaveformSamples), 12)
        group.WaveformData = np.hstack([raw, raw[:, 8:9] + change]).astype("<i2").tobytes()  # V3 again
        group.NumberOfWaveformChannels = 13
        group.ChannelDefinitionSequence.append(copy.deepcopy(group.ChannelDefinitionSequence[8]))
        path = _saved(dataset, tmp_path / name)
        if change:
            with pytest.raises(EcgReadError, match="changed.dcm: lead V3 is stored twice with different samples"):
                read_ecg(path)
        else:
            np.testing.assert_array_equal(read_ecg(path).signal, original.signal)


def test_two_dicom_rhythm_groups_are_refused(tmp_path):
    dataset = _dicom()
    dataset.WaveformSequence[1].MultiplexGroupLabel = "RHYTHM 2"
    with pytest.raises(EcgReadError, match="groups.dcm: 2 multiplex groups labelled RHYTHM .*ambiguous"):
        read_ecg(_saved(dataset, tmp_path / "groups.dcm"))


def test_a_huge_sparse_dicom_file_is_refused_before_reading(tmp_path):
    """The issue's 480 MB sparse file: 3.8 GB RSS and a bare MemoryError before; refused from its size now."""
    path = _saved(_dicom(), tmp_path / "sparse.dcm")
    os.truncate(path, 480 * 2**20)
    with pytest.raises(EcgReadError, match="sparse.dcm: 480 MiB is too large for a DICOM resting ECG"):
        read_ecg(path)


def test_a_dicom_group_declaring_a_huge_size_is_refused_before_decoding(tmp_path, monkeypatch):
    dataset = _dicom()
    dataset.WaveformSequence[0].NumberOfWaveformSamples = 2**30
    path = _saved(dataset, tmp_path / "declared.dcm")

    def never(*_args, **_kwargs):
        raise AssertionError("decoded before the declared size was checked")

    monkeypatch.setattr(pydicom.Dataset, "waveform_array", never)
    with pytest.raises(EcgReadError, match="declared.dcm: waveform group 0 declares 1,073,741,824 samples x 12 channels"):
        read_ecg(path)
    assert dicom_waveform.MAX_DICOM_ECG_BYTES < 2**30 * 12 * 2


def _unlabelled(dataset: pydicom.Dataset) -> pydicom.Dataset:
    for group in dataset.WaveformSequence:
        del group.MultiplexGroupLabel
    return dataset


@pytest.mark.parametrize("case, message", [
    ("zero rate, unlabelled", "sampling rate 0.0 Hz is not a positive finite number"),  # was ZeroDivisionError
    ("no rate, unlabelled", "waveform group 1: no usable SamplingFrequency"),  # was AttributeError
    ("no rate", "sampling rate nan Hz"),
    ("no sample count", "waveform group 0: no usable NumberOfWaveformSamples"),  # was AttributeError
    ("no sample count, unlabelled", "waveform group 0: no usable NumberOfWaveformSamples"),
    ("empty channel source", r"missing lead\(s\) II"),  # was IndexError
    ("empty units", "channel 'Lead II': sensitivity units 'missing'"),  # was IndexError
    ("more definitions than channels", "waveform group 0: 13 channel definitions for 12 channels"),
])
def test_dicom_header_defects_are_named_read_errors(tmp_path, case, message):
    dataset = _unlabelled(_dicom()) if case.endswith("unlabelled") else _dicom()
    rhythm, median = dataset.WaveformSequence
    if case.startswith("zero rate"):
        median.SamplingFrequency = 0
    elif case == "no rate, unlabelled":
        del median.SamplingFrequency
    elif case == "no rate":
        del rhythm.SamplingFrequency
    elif case.startswith("no sample count"):
        del rhythm.NumberOfWaveformSamples
    elif case == "empty channel source":
        for group in dataset.WaveformSequence:
            group.ChannelDefinitionSequence[1].ChannelSourceSequence = Sequence([])
    elif case == "empty units":
        rhythm.ChannelDefinitionSequence[1].ChannelSensitivityUnitsSequence = Sequence([])
    else:
        rhythm.ChannelDefinitionSequence.append(copy.deepcopy(rhythm.ChannelDefinitionSequence[0]))
    path = _saved(dataset, tmp_path / "defect.dcm")
    with pytest.raises(EcgReadError, match=f"defect.dcm: .*{message}"):
        read_ecg(path)


def test_an_unlabelled_dicom_ecg_still_reads_its_longest_group(tmp_path):
    original = read_ecg(get_testdata_file("waveform_ecg.dcm"))
    path = _saved(_unlabelled(_dicom()), tmp_path / "unlabelled.dcm")
    np.testing.assert_array_equal(read_ecg(path).signal, original.signal)


# --- CMR: rescale factors, duplicates and named header errors ----------------------------------------------------

def _series_copy(realdata: Path, folder: Path, edit=None) -> Path:
    """The Sunnybrook slice as a series in ``folder``, ``edit(index, dataset)`` applied to each image."""
    folder.mkdir()
    for index, source in enumerate(sorted((realdata / SUNNYBROOK_DICOM).iterdir())):
        dataset = pydicom.dcmread(source)
        if edit is not None:
            edit(index, dataset)
        dataset.save_as(folder / source.name)
    return folder


@pytest.mark.parametrize("slope", ["0", "-1"])
def test_a_zero_or_negative_rescale_slope_is_refused(realdata, tmp_path, slope):
    """A zero slope was silently read as 1, a negative one inverted the image."""
    def edit(index, dataset):
        if index == 4:
            dataset.RescaleSlope, dataset.RescaleIntercept = slope, "0"

    folder = _series_copy(realdata, tmp_path / "series", edit)
    with pytest.raises(CmrReadError, match=f"series: .*IM-0125.dcm: RescaleSlope {slope} .*must be positive"):
        read_dicom_series(folder)


def test_a_positive_rescale_is_still_applied(realdata, tmp_path):
    plain = read_dicom_series(realdata / SUNNYBROOK_DICOM)

    def edit(_index, dataset):
        dataset.RescaleSlope, dataset.RescaleIntercept = "2", "-5"

    scaled = read_dicom_series(_series_copy(realdata, tmp_path / "series", edit))
    np.testing.assert_array_equal(scaled.image, plain.image * 2 - 5)


def test_the_same_dicom_image_twice_is_refused(realdata, tmp_path):
    folder = _series_copy(realdata, tmp_path / "series")
    shutil.copy(folder / "IM-0130.dcm", folder / "IM-0130 copy.dcm")
    with pytest.raises(CmrReadError, match=r"series: image .* is stored twice \(IM-0130 copy.dcm, IM-0130.dcm\)"):
        read_dicom_series(folder)


def test_a_zip_member_stored_twice_is_refused(realdata, tmp_path):
    import zipfile  # noqa: PLC0415 - only this test writes a zip

    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as archive:
        files = sorted((realdata / SUNNYBROOK_DICOM).iterdir())
        for source in files:
            archive.write(source, source.name)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.write(files[0], files[0].name)
    with pytest.raises(CmrReadError, match="twice.zip: image .* is stored twice"):
        read_ukb_cmr_zip(path)


SERIES_DEFECTS = {  # what used to escape as a bare AttributeError, ValueError or TypeError
    "no position": (3, lambda d: delattr(d, "ImagePositionPatient")),
    "no rows": (3, lambda d: delattr(d, "Rows")),
    "no orientation": (3, lambda d: delattr(d, "ImageOrientationPatient")),
    "one pixel spacing": (0, lambda d: setattr(d, "PixelSpacing", ["1.4"])),
}


@pytest.mark.parametrize("defect", sorted(SERIES_DEFECTS))
def test_dicom_series_header_defects_are_named_read_errors(realdata, tmp_path, defect):
    where, change = SERIES_DEFECTS[defect]

    def edit(index, dataset):
        if index == where:
            change(dataset)

    folder = _series_copy(realdata, tmp_path / "series", edit)
    with pytest.raises(CmrReadError, match="series: "):
        read_dicom_series(folder)


def test_a_negative_nifti_scale_slope_is_refused(tmp_path):
    data = (RNG.random((16, 16, 2, 10)) * 100).astype(np.int16)
    path = tmp_path / "slope.nii"
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_zooms((1.5, 1.5, 8.0, 40.0))
    image.header.set_xyzt_units("mm", "msec")
    nib.save(image, path)
    assert read_nifti_cine(path).image.max() > 0
    raw = bytearray(path.read_bytes())
    raw[112:116] = struct.pack("<f", -1.0)  # scl_slope
    path.write_bytes(bytes(raw))
    with pytest.raises(CmrReadError, match="slope.nii: scl_slope -1 inverts the image"):
        read_nifti_cine(path)
