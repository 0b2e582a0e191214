"""Philips XML, SCP-ECG and EDF readers: real fixtures against independent decodes, and every bad-input rule."""

import base64
import re
import shutil
import struct

import edfio
import numpy as np
import pytest

from ptacl_core.io.ecg import EcgReadError, read_ecg, read_edf, read_philips_xml, read_scp_ecg, read_wfdb, xml_safety
from ptacl_core.io.ecg import edf as edf_module
from ptacl_core.io.ecg import philips_xml as philips_module
from ptacl_core.io.ecg import scp_ecg as scp_module
from ptacl_core.leads import LEAD_NAMES

PHILIPS = ("philips_1-03.xml", "philips_1-04.xml")
SCP_LEAD_CODES = {1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6", 9: "V7", 11: "V3R"}


# ---------------------------------------------------------------------------------------------------- Philips XML


@pytest.fixture(scope="module")
def philips(realdata):
    return realdata / "ecg/philips_xml"


@pytest.mark.realdata
@pytest.mark.parametrize("name", PHILIPS)
def test_philips_reads_equal_to_sierraecgs_own_decode(philips, name):
    import sierraecg

    ecg = read_philips_xml(philips / name)
    assert ecg.signal.shape == (12, 5500) and ecg.fs == 500 and ecg.derived_leads == ()
    reference = {lead.label: lead.samples for lead in sierraecg.read_file(str(philips / name)).leads}  # loops and all
    expected = np.stack([reference[lead] for lead in LEAD_NAMES]).astype(np.float64) * 5e-3  # 5 µV per count
    np.testing.assert_allclose(ecg.signal, expected, rtol=0, atol=1e-6)  # float32 of mV


@pytest.mark.realdata
@pytest.mark.parametrize("name", PHILIPS)
def test_philips_limb_leads_obey_einthoven_and_goldberger(philips, name):
    counts = np.round(read_philips_xml(philips / name).signal.astype(np.float64) / 5e-3)
    lead_i, lead_ii, lead_iii, avr, avl, avf = counts[:6, :5000]  # the first 10 s (the kit's window)
    assert np.abs(lead_iii - (lead_ii - lead_i)).max() <= 2  # counts of 5 µV: the device's rounding
    assert np.abs(avr + (lead_i + lead_ii) / 2).max() <= 1.5
    assert np.abs(avl - (lead_i - lead_iii) / 2).max() <= 1.5
    assert np.abs(avf - (lead_ii + lead_iii) / 2).max() <= 1.5
    # the last 0.2 s of the 11 s export hold the device's 1 mV calibration pulse in every lead, where they do not
    calibration = np.abs(counts[2] - (counts[1] - counts[0])) > 2
    assert calibration.sum() == 100 and np.flatnonzero(calibration).min() >= 5000


@pytest.mark.realdata
def test_philips_is_recognised_by_content(philips, tmp_path):
    for name in PHILIPS:
        renamed = tmp_path / f"{name}.txt"
        shutil.copy(philips / name, renamed)
        np.testing.assert_array_equal(read_ecg(renamed).signal, read_philips_xml(philips / name).signal)
    shutil.copy(philips / PHILIPS[0], tmp_path / "no_suffix")
    assert read_ecg(tmp_path / "no_suffix").signal.shape == (12, 5500)


def _philips_variant(philips, tmp_path, old, new, count=1):
    text = (philips / "philips_1-03.xml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.xml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


@pytest.mark.realdata
@pytest.mark.parametrize("value", ["-5", "0", "nan"])
def test_philips_resolution_must_be_positive(philips, tmp_path, value):
    path = _philips_variant(philips, tmp_path, "<signalresolution>5<", f"<signalresolution>{value}<")
    with pytest.raises(EcgReadError, match="resolution"):
        read_philips_xml(path)


@pytest.mark.realdata
def test_philips_entity_declarations_unknown_compression_and_truncation_are_refused(philips, tmp_path):
    with pytest.raises(EcgReadError, match="declares entities"):
        read_philips_xml(_philips_variant(philips, tmp_path, "<restingecgdata", '<!DOCTYPE r [<!ENTITY x "5">]>\n<restingecgdata'))
    with pytest.raises(EcgReadError, match="compression 'ZIP' is not supported"):
        read_philips_xml(_philips_variant(philips, tmp_path, 'compressmethod="XLI"', 'compressmethod="ZIP"'))
    text = (philips / "philips_1-03.xml").read_text(encoding="utf-8")
    payload = re.search(r"(<parsedwaveforms[^>]*>)(.*?)(</parsedwaveforms>)", text, flags=re.DOTALL)
    data = base64.b64decode("".join(payload.group(2).split()))
    for cut in (data[: len(data) // 3], data[:-700]):
        truncated = tmp_path / "truncated.xml"
        truncated.write_text(text.replace(payload.group(2), base64.b64encode(cut).decode()), encoding="utf-8")
        with pytest.raises(EcgReadError, match=r"truncated|cannot be decompressed"):
            read_philips_xml(truncated)
    broken = tmp_path / "broken.xml"
    broken.write_text(text.replace(payload.group(2), "not base64 at all!"), encoding="utf-8")
    with pytest.raises(EcgReadError, match="not valid base64"):
        read_philips_xml(broken)


@pytest.mark.realdata
def test_philips_oversized_file_is_refused_before_reading(philips, monkeypatch):
    monkeypatch.setattr(xml_safety, "MAX_XML_BYTES", 1000)
    with pytest.raises(EcgReadError, match="too large"):
        read_philips_xml(philips / PHILIPS[1])


@pytest.mark.realdata
def test_philips_uncompressed_payload_reads_like_xli(philips, tmp_path):
    from sierraecg.xli import xli_decode

    text = (philips / "philips_1-03.xml").read_text(encoding="utf-8")
    payload = re.search(r"<parsedwaveforms[^>]*>(.*?)</parsedwaveforms>", text, flags=re.DOTALL).group(1)
    stored = xli_decode(base64.b64decode("".join(payload.split())), list(LEAD_NAMES))[:12]  # residual limb leads
    raw = base64.b64encode(np.stack(stored).astype("<i2").tobytes()).decode()
    path = tmp_path / "raw.xml"
    path.write_text(text.replace(payload, raw).replace('compressmethod="XLI"', 'compressmethod="Uncompressed"'),
                    encoding="utf-8")
    np.testing.assert_array_equal(read_philips_xml(path).signal, read_philips_xml(philips / "philips_1-03.xml").signal)
    path.write_text(text.replace(payload, raw[:-8]).replace('compressmethod="XLI"', 'compressmethod="Uncompressed"'),
                    encoding="utf-8")
    with pytest.raises(EcgReadError, match="bytes of uncompressed samples"):
        read_philips_xml(path)


@pytest.mark.realdata
def test_philips_header_disagreements_are_refused(philips, tmp_path, monkeypatch):
    cases = {  # leads of 5500 samples that the header says hold 5000; two resolutions; an offset; 12-bit samples
        "durationperchannel": ('durationperchannel="11000"', 'durationperchannel="10000"',
                               "disagree with durationperchannel 10000 ms at 500 Hz (5000 samples)"),
        "resolution": ("<parsedwaveforms ", '<parsedwaveforms resolution="10" ',
                       "resolution (µV per count) is 5 in <signalcharacteristics> but 10 on <parsedwaveforms>"),
        "offset": ("<signaloffset>0<", "<signaloffset>3<", "signaloffset '3' is not supported"),
        "bits": ("<bitspersample>16<", "<bitspersample>12<", "bitspersample '12' is not supported"),
    }
    for old, new, message in cases.values():
        with pytest.raises(EcgReadError, match=re.escape(message)):
            read_philips_xml(_philips_variant(philips, tmp_path, old, new))
    monkeypatch.setattr(philips_module, "MAX_PAYLOAD_BYTES", 1000)  # the pure-Python XLI decoder is bounded
    with pytest.raises(EcgReadError, match="MB of samples: too large"):
        read_philips_xml(philips / PHILIPS[0])


# ---------------------------------------------------------------------------------------------------------- SCP-ECG


def _bits(data: bytes):
    for byte in data:
        for shift in range(7, -1, -1):
            yield (byte >> shift) & 1


def _signed(bits: list[int]) -> int:
    value = int("".join(map(str, bits)), 2)
    return value - (1 << len(bits)) if bits[0] else value


def _default_huffman(data: bytes, count: int) -> list[int]:
    """SCP-ECG's default Huffman table, bit by bit, MSB first: '0' = 0; k ones, a 0 and a sign bit = +-k (k = 1..8);
    nine ones and a 0: the next 8 bits hold the value; ten ones: the next 16 bits."""
    stream, values = _bits(data), []
    while len(values) < count:
        ones = 0
        while ones < 10 and next(stream) == 1:
            ones += 1
        if ones == 0:
            values.append(0)
        elif ones <= 8:
            values.append(-ones if next(stream) else ones)
        elif ones == 9:
            values.append(_signed([next(stream) for _ in range(8)]))
        else:
            values.append(_signed([next(stream) for _ in range(16)]))
    return values


def reference_scp_decode(raw: bytes) -> tuple[dict[str, np.ndarray], float, float]:
    """An independent SCP-ECG decoder for files with the default Huffman table, no reference-beat subtraction and
    first differences: {lead: counts}, µV per count, sampling interval (µs)."""
    pointers = {}
    section0_length = struct.unpack_from("<I", raw, 6 + 4)[0]
    for offset in range(6 + 16, 6 + section0_length, 10):
        section, length, index = struct.unpack_from("<HII", raw, offset)
        pointers[section] = (index - 1, length)
    start, _ = pointers[2]
    assert struct.unpack_from("<H", raw, start + 16)[0] == 19999  # the default table
    start, _ = pointers[3]
    n_leads, flags = raw[start + 16], raw[start + 17]
    assert not flags & 1  # no reference beat subtracted
    codes = [raw[start + 18 + 9 * k + 8] for k in range(n_leads)]
    start, _ = pointers[6]
    avm_nv, interval_us, difference, _bimodal = struct.unpack_from("<HHBB", raw, start + 16)
    assert difference == 1
    sizes = struct.unpack_from(f"<{n_leads}H", raw, start + 22)
    position, leads = start + 22 + 2 * n_leads, {}
    for code, size in zip(codes, sizes, strict=True):
        differences = _default_huffman(raw[position: position + size], 6000)
        leads[SCP_LEAD_CODES[code]] = np.cumsum(differences)
        position += size
    return leads, avm_nv / 1000, interval_us


def _crc(data: bytes) -> int:
    """CRC-CCITT (polynomial 0x1021, initial 0xFFFF), bit by bit: the checksum SCP-ECG stores."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


@pytest.fixture(scope="module")
def scp(realdata):
    return realdata / "ecg/scp_ecg"


@pytest.mark.realdata
def test_scp_reads_equal_to_an_independent_decode(scp):
    ecg = read_scp_ecg(scp / "scp_standard_leads.scp")
    leads, uv_per_count, interval = reference_scp_decode((scp / "scp_standard_leads.scp").read_bytes())
    assert ecg.signal.shape == (12, 6000) and interval == 1667 and ecg.fs == 600.0
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF") and uv_per_count == 3.75
    for lead, counts in leads.items():
        np.testing.assert_allclose(ecg.signal[LEAD_NAMES.index(lead)], counts * uv_per_count * 1e-3, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ecg.signal[2], ecg.signal[1] - ecg.signal[0], atol=1e-6)  # III = II - I, derived


@pytest.mark.realdata
def test_scp_with_v3r_and_v7_names_the_missing_leads_and_substitutes_none(scp):
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser

    path = scp / "scp_v3r_v7_leads.scp"
    with pytest.raises(EcgReadError, match=r"missing lead\(s\) V3, V5; found I, II, V1, V2, V4, V6 and non-standard V3R, V7"):
        read_scp_ecg(path)
    with pytest.raises(EcgReadError, match="V3, V5"):
        read_ecg(path)
    leads, uv_per_count, _ = reference_scp_decode(path.read_bytes())  # the library decodes what it stores correctly
    decoded = {lead.label: lead.samples for lead in SCPECGParser().parse(path).leads}
    assert sorted(decoded) == sorted(leads)
    for lead, counts in leads.items():
        np.testing.assert_array_equal(decoded[lead], counts)


@pytest.mark.realdata
def test_scp_is_recognised_by_content(scp, tmp_path):
    shutil.copy(scp / "scp_standard_leads.scp", tmp_path / "ecg_from_the_cart")
    shutil.copy(scp / "scp_standard_leads.scp", tmp_path / "ecg.dat")  # no .hea beside it: not WFDB
    for path in (tmp_path / "ecg_from_the_cart", tmp_path / "ecg.dat"):
        np.testing.assert_array_equal(read_ecg(path).signal, read_scp_ecg(scp / "scp_standard_leads.scp").signal)


@pytest.mark.realdata
def test_damaged_scp_files_are_refused(scp, tmp_path, monkeypatch):
    raw = (scp / "scp_standard_leads.scp").read_bytes()
    cases = {"truncated": (raw[:-500], "the record declares 25666 bytes but the file has 25166"),
             "padded": (raw + bytes(10), "the file has 25676"),
             "flipped": (raw[:20000] + bytes([raw[20000] ^ 0xFF]) + raw[20001:], "CRC mismatch"),
             "garbage": (b"\x00" * 200, "not an SCP-ECG file")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EcgReadError, match=re.escape(message)):
            read_scp_ecg(tmp_path / name)
    monkeypatch.setattr(scp_module, "MAX_SCP_BYTES", 1000)
    with pytest.raises(EcgReadError, match="too large"):
        read_scp_ecg(scp / "scp_standard_leads.scp")


@pytest.mark.realdata
def test_a_zero_scp_amplitude_multiplier_is_refused(scp, tmp_path):
    raw = bytearray((scp / "scp_standard_leads.scp").read_bytes())
    start, length = 2094, 22448  # section 6 (pointer table: 1-based index 2095)
    assert struct.unpack_from("<HH", raw, start + 2)[0] == 6 and struct.unpack_from("<H", raw, start + 16)[0] == 3750
    struct.pack_into("<H", raw, start + 16, 0)  # AVM = 0 nV
    struct.pack_into("<H", raw, start, _crc(raw[start + 2: start + length]))  # the section's CRC, then the record's
    struct.pack_into("<H", raw, 0, _crc(raw[2:]))
    (tmp_path / "zero_avm.scp").write_bytes(bytes(raw))
    with pytest.raises(EcgReadError, match=r"amplitude multiplier \(AVM, nV\) 0.0 is not a positive"):
        read_scp_ecg(tmp_path / "zero_avm.scp")


def _scp_with_lead_range(raw: bytes, lead: int, first: int, last: int) -> bytes:
    """The standard fixture with section 3's range of one lead replaced, section and record CRCs fixed."""
    raw = bytearray(raw)
    start, length = 348, 90  # section 3 (pointer table: 1-based index 349)
    assert struct.unpack_from("<H", raw, start + 2)[0] == 3 and struct.unpack_from("<II", raw, start + 18) == (1, 6000)
    struct.pack_into("<II", raw, start + 18 + 9 * lead, first, last)
    struct.pack_into("<H", raw, start, _crc(raw[start + 2: start + length]))
    struct.pack_into("<H", raw, 0, _crc(raw[2:]))
    return bytes(raw)


@pytest.mark.realdata
def test_scp_lead_ranges_are_checked_before_decoding(scp, tmp_path):
    raw = (scp / "scp_standard_leads.scp").read_bytes()
    cases = {"huge": (_scp_with_lead_range(raw, 0, 1, 3_724_593_264), "more than section 6 can hold"),  # 28 GiB
             "sequential": (_scp_with_lead_range(raw, 5, 6001, 12000), "not recorded simultaneously")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(EcgReadError, match=message):
            read_scp_ecg(tmp_path / name)


def test_the_bitwise_crc_reference_matches_the_standard_check_value():
    assert _crc(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE


# -------------------------------------------------------------------------------------------------------- EDF / BDF


@pytest.fixture(scope="module")
def wfdb_ecg(realdata):
    return read_wfdb(realdata / "ecg/wfdb/cinc2021/HR06000.hea")  # 12 x 5000 at 500 Hz, mV


def _write_edf(path, signal, fs, leads=LEAD_NAMES, labels="ECG {}", unit="uV", extra=(), annotations=None, bdf=False):
    scale = 1000.0 if unit == "uV" else 1.0
    kind, signal_kind = (edfio.Bdf, edfio.BdfSignal) if bdf else (edfio.Edf, edfio.EdfSignal)
    signals = [signal_kind(signal[LEAD_NAMES.index(lead)] * scale, fs, label=labels.format(lead), physical_dimension=unit)
               for lead in leads]
    recording = kind([*signals, *extra], annotations=annotations) if annotations else kind([*signals, *extra])
    recording.write(path)
    return path


def _step(path, index=0):
    """The quantisation step (physical units per count) of a written signal."""
    signal = edfio.read_edf(path).signals[index]
    (low, high), (digital_low, digital_high) = signal.physical_range, signal.digital_range
    return (high - low) / (digital_high - digital_low)


@pytest.mark.realdata
def test_edf_reads_back_what_was_written(wfdb_ecg, tmp_path):
    path = _write_edf(tmp_path / "twelve.edf", wfdb_ecg.signal, wfdb_ecg.fs)
    ecg = read_edf(path)
    assert ecg.signal.shape == (12, 5000) and ecg.fs == 500 and ecg.derived_leads == ()
    tolerance = max(_step(path, i) for i in range(12)) * 1e-3  # µV per count, in mV
    assert np.abs(ecg.signal - wfdb_ecg.signal).max() <= tolerance / 2 + 1e-6
    millivolts = _write_edf(tmp_path / "mv.edf", wfdb_ecg.signal, wfdb_ecg.fs, labels="{}", unit="mV")
    step = max(_step(millivolts, i) for i in range(12))
    np.testing.assert_allclose(read_edf(millivolts).signal, wfdb_ecg.signal, rtol=0, atol=step / 2 + 1e-6)


@pytest.mark.realdata
def test_edf_with_eight_leads_annotations_and_other_channels(wfdb_ecg, tmp_path):
    eight = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    other = edfio.EdfSignal(np.sin(np.arange(1000) / 10.0), 100, label="EEG Fpz-Cz", physical_dimension="uV")
    path = _write_edf(tmp_path / "eight.edf", wfdb_ecg.signal, wfdb_ecg.fs, leads=eight, labels="EKG-{}",
                      extra=[other], annotations=[edfio.EdfAnnotation(1.0, None, "lights off")])
    assert path.read_bytes()[192:197] == b"EDF+C"
    ecg = read_edf(path)
    assert ecg.derived_leads == ("III", "aVR", "aVL", "aVF")
    np.testing.assert_allclose(ecg.signal[2], ecg.signal[1] - ecg.signal[0], atol=1e-6)
    assert read_edf(path, max_seconds=4).signal.shape == (12, 2000)
    renamed = tmp_path / "rec.bin"
    shutil.copy(path, renamed)
    np.testing.assert_array_equal(read_ecg(renamed).signal, ecg.signal)


@pytest.mark.realdata
def test_bdf_reads_like_edf(wfdb_ecg, tmp_path, monkeypatch):
    path = _write_edf(tmp_path / "rec.bdf", wfdb_ecg.signal, wfdb_ecg.fs, bdf=True)
    assert path.read_bytes()[:8] == b"\xffBIOSEMI"
    np.testing.assert_allclose(read_ecg(path).signal, wfdb_ecg.signal, atol=1e-4)
    monkeypatch.setattr(edf_module, "MAX_BDF_BYTES", 10_000)  # edfio reads BDF whole: bounded before
    with pytest.raises(EcgReadError, match="read whole into memory"):
        read_edf(path)


def _patch(raw: bytes, field: str, index: int, value: str) -> bytes:
    """An EDF header with one signal field (``edf_module._SIGNAL_FIELDS``) of signal ``index`` replaced."""
    count = int(raw[252:256].decode())
    offset = 256
    for name, width in edf_module._SIGNAL_FIELDS:
        if name == field:
            position = offset + index * width
            return raw[:position] + value.ljust(width).encode() + raw[position + width:]
        offset += width * count
    raise KeyError(field)


@pytest.mark.realdata
def test_bad_edf_files_are_refused(wfdb_ecg, tmp_path):
    raw = _write_edf(tmp_path / "good.edf", wfdb_ecg.signal, wfdb_ecg.fs).read_bytes()
    cases = {
        "truncated": (raw[:-1000], "truncated"),
        "padded": (raw + bytes(7), "padded"),
        "header_bytes": (raw[:184] + b"512     " + raw[192:], "header bytes; 12 signals need 3328"),
        "negative_gain": (_patch(_patch(raw, "physical_min", 3, "9000"), "physical_max", 3, "-9000"), "negative gain"),
        "zero_gain": (_patch(_patch(raw, "physical_min", 3, "5"), "physical_max", 3, "5"), "a zero gain"),
        "digital": (_patch(raw, "digital_max", 0, "-32768"), "digital maximum -32768 is not above"),
        "implausible": (_patch(raw, "physical_max", 4, "1.8e42"), "is implausible for an ECG (beyond ±1 kV)"),
        "unit": (_patch(raw, "dimension", 0, "degC"), "unit 'degC'"),
        "no_unit": (_patch(raw, "dimension", 0, ""), "no physical dimension"),
        "no_ecg": (_relabel_all(raw, "EEG"), "no ECG lead among the channels"),
        "records": (raw[:236] + b"-1      " + raw[244:], "never closed"),
        "samples": (_patch(raw, "samples", 2, "2.5"), "declares 2.5 samples per data record"),
        "discontinuous": (raw[:192] + b"EDF+D".ljust(44) + raw[236:], "discontinuous"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.edf").write_bytes(data)
        with pytest.raises(EcgReadError, match=re.escape(message)):
            read_edf(tmp_path / f"{name}.edf")
    (tmp_path / "short").write_bytes(raw[:100])
    with pytest.raises(EcgReadError, match="shorter than an EDF header"):
        read_edf(tmp_path / "short")


def _relabel_all(raw: bytes, prefix: str) -> bytes:
    for index in range(12):
        raw = _patch(raw, "label", index, f"{prefix} {index}")
    return raw


@pytest.mark.realdata
def test_edf_leads_at_two_rates_are_refused(wfdb_ecg, tmp_path):
    slow = edfio.EdfSignal(wfdb_ecg.signal[6, ::2] * 1000, 250, label="ECG V1", physical_dimension="uV")
    leads = tuple(lead for lead in LEAD_NAMES if lead != "V1")
    path = _write_edf(tmp_path / "rates.edf", wfdb_ecg.signal, wfdb_ecg.fs, leads=leads, extra=[slow])
    with pytest.raises(EcgReadError, match="different sampling rates"):
        read_edf(path)


@pytest.mark.realdata
def test_edf_header_numbers_must_be_finite_and_digital_bounds_whole(wfdb_ecg, tmp_path):
    """edfio, given a NaN or fractional digital bound, returns raw counts without a word (a ~60x misread)."""
    raw = _write_edf(tmp_path / "good.edf", wfdb_ecg.signal, wfdb_ecg.fs).read_bytes()
    cases = {"digital_nan": (_patch(raw, "digital_min", 0, "nan"), "not a finite number"),
             "digital_fraction": (_patch(raw, "digital_min", 0, "-32768.5"), "not a whole number in -32768..32767"),
             "digital_range": (_patch(raw, "digital_max", 0, "99999"), "not a whole number in -32768..32767"),
             "physical_inf": (_patch(raw, "physical_max", 0, "inf"), "not a finite number"),
             "records_nan": (raw[:236] + b"nan     " + raw[244:], "not a finite number"),
             "samples_nan": (_patch(raw, "samples", 0, "nan"), "not a finite number")}
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.edf").write_bytes(data)
        with pytest.raises(EcgReadError, match=re.escape(message)):
            read_edf(tmp_path / f"{name}.edf")


@pytest.mark.realdata
def test_edf_micro_sign_units_device_labels_and_unmapped_ecg_channels(wfdb_ecg, tmp_path):
    raw = _write_edf(tmp_path / "good.edf", wfdb_ecg.signal, wfdb_ecg.fs).read_bytes()
    count, offset = 12, 256 + (16 + 80) * 12  # the dimension fields: after the labels and transducers
    micro = bytearray(raw)
    for index in range(count):
        micro[offset + 8 * index: offset + 8 * (index + 1)] = b"\xb5V".ljust(8)  # Latin-1 µV, as devices write it
    (tmp_path / "micro.edf").write_bytes(bytes(micro))
    np.testing.assert_allclose(read_edf(tmp_path / "micro.edf").signal, read_edf(tmp_path / "good.edf").signal)
    labels = {"II": "ECG DII", "V1": "ECG V1-Ref", "III": "EKG DIII"}
    relabelled = raw
    for lead, label in labels.items():
        relabelled = _patch(relabelled, "label", LEAD_NAMES.index(lead), label)
    (tmp_path / "labels.edf").write_bytes(relabelled)
    np.testing.assert_array_equal(read_edf(tmp_path / "labels.edf").signal, read_edf(tmp_path / "good.edf").signal)
    (tmp_path / "v3r.edf").write_bytes(_patch(raw, "label", LEAD_NAMES.index("V3"), "ECG V3R"))
    with pytest.raises(EcgReadError, match=re.escape("missing lead(s) V3; found") + ".*ECG V3R.*never substituted"):
        read_edf(tmp_path / "v3r.edf")
