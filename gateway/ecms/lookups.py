"""The e-CMS look-ups answered from the directory, the code tables and the clock.

GetMinistryOrganizationList, GetOrganizationList, GetSecretCodes, GetSpeedCodes, GetMimeCodes
and TimeCheckRequest need nothing from the exchange: each is a function of the directory, the
facade's settings, the request time and the URL advertised as ECMS-URL. Row element names are the
ones clients read by name (``Th-Name``, ``ECMS-URL``, ``OrganizationID`` ...); where the two public
clients read different names, each row carries both (``gateway/ecms/CODES.md``, "Answer shapes").
Rows hold exactly one of each name, because mil-doc pairs ``GetElementsByTagName(x)[i]`` with
``GetElementsByTagName(y)[i]`` across the whole answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

from lxml import etree

from gateway.core.directory import Directory
from gateway.core.ecmswire.soap import U, format_time, response
from gateway.core.ecmswire.tables import (
    MIME_TYPES,
    SECRET_CODES,
    SECRET_NAMES_TH,
    SPEED_CODES,
    SPEED_NAMES_TH,
)
from gateway.ecms.settings import EcmsSettings

#: (answer element name, directory, settings, request time, ECMS-URL) -> the answer element.
LookUp = Callable[[str, Directory, EcmsSettings, dt.datetime, str], etree._Element]


def ministries(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
               url: str = "") -> etree._Element:
    seen: dict[str, str] = {}
    for a in directory.ministries():
        seen.setdefault(a.ministry, a.name_th)
    rows = [U.MinistryOrganizationList(U("Th-Name", th_name), U.MinistryID(code))
            for code, th_name in sorted(seen.items())]
    return response(name, *rows, process_id=None, at=now)


def organizations(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
                  url: str = "") -> etree._Element:
    """One row per active agency. ECMS-URL: where that agency reaches the gateway (``url``: the public
    URL, else the one the caller used), never empty. After the specification's four elements, two
    ``name`` elements, English then Thai: BOI-DMS reads ``Item("name")`` and its ``NextSibling``."""
    advertised = url or settings.public_url
    rows = [U.OrganizationList(U("En-Name", a.name_en), U("Th-Name", a.name_th),
                               U("ECMS-URL", advertised), U.OrganizationID(a.code),
                               U("name", a.name_en), U("name", a.name_th))
            for a in directory.all() if a.active]
    return response(name, *rows, process_id=None, at=now)


def _code_row(tag: str, code: str, name_th: str) -> etree._Element:
    """Value/Description (the specification's sample, read by mil-doc) and Code/Name (the gateway's
    first shape, kept for clients written against it); the Description is the Thai name a clerk reads."""
    return U(tag, U.Code(code), U.Name(name_th), U.Value(code), U.Description(name_th))


def secret_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
                 url: str = "") -> etree._Element:
    rows = [_code_row("SecretCode", c, SECRET_NAMES_TH[c]) for c in SECRET_CODES]
    return response(name, *rows, process_id=None, at=now)


def speed_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
                url: str = "") -> etree._Element:
    rows = [_code_row("SpeedCode", c, SPEED_NAMES_TH[c]) for c in SPEED_CODES]
    return response(name, *rows, process_id=None, at=now)


def mime_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
               url: str = "") -> etree._Element:
    """Content-type/File-Extension (the specification's sample, read by mil-doc) beside Code/Extension."""
    rows = [U.MimeCode(U.Code(m), U.Extension(ext), U("Content-type", m), U("File-Extension", ext))
            for m, ext in MIME_TYPES.items()]
    return response(name, *rows, process_id=None, at=now)


def time_check(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime,
               url: str = "") -> etree._Element:
    return U(name, U.ECMSTime(format_time(now)))


#: Operation element -> its look-up.
LOOKUPS: Final[dict[str, LookUp]] = {
    "GetMinistryOrganizationList": ministries,
    "GetOrganizationList": organizations,
    "GetSecretCodes": secret_codes,
    "GetSpeedCodes": speed_codes,
    "GetMimeCodes": mime_codes,
    "TimeCheckRequest": time_check,
}
