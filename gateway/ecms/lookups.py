"""The e-CMS look-ups answered from the directory, the code tables and the clock.

GetMinistryOrganizationList, GetOrganizationList, GetSecretCodes, GetSpeedCodes, GetMimeCodes
and TimeCheckRequest need nothing from the exchange: each is a function of the directory, the
facade's settings and the request time. Row element names are the ones clients read by name
(``Th-Name``, ``ECMS-URL``, ``OrganizationID`` ...).
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

#: (answer element name, directory, settings, request time) -> the answer element.
LookUp = Callable[[str, Directory, EcmsSettings, dt.datetime], etree._Element]


def ministries(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime) -> etree._Element:
    seen: dict[str, str] = {}
    for a in directory.ministries():
        seen.setdefault(a.ministry, a.name_th)
    rows = [U.MinistryOrganizationList(U("Th-Name", th_name), U.MinistryID(code))
            for code, th_name in sorted(seen.items())]
    return response(name, *rows, process_id=None, at=now)


def organizations(name: str, directory: Directory, settings: EcmsSettings,
                  now: dt.datetime) -> etree._Element:
    rows = [U.OrganizationList(U("En-Name", a.name_en), U("Th-Name", a.name_th),
                               U("ECMS-URL", settings.public_url), U.OrganizationID(a.code))
            for a in directory.all() if a.active]
    return response(name, *rows, process_id=None, at=now)


def secret_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime) -> etree._Element:
    rows = [U.SecretCode(U.Code(c), U.Name(SECRET_NAMES_TH[c]), U.Description(v.value))
            for c, v in SECRET_CODES.items()]
    return response(name, *rows, process_id=None, at=now)


def speed_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime) -> etree._Element:
    rows = [U.SpeedCode(U.Code(c), U.Name(SPEED_NAMES_TH[c]), U.Description(v.value))
            for c, v in SPEED_CODES.items()]
    return response(name, *rows, process_id=None, at=now)


def mime_codes(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime) -> etree._Element:
    rows = [U.MimeCode(U.Code(m), U.Extension(ext)) for m, ext in MIME_TYPES.items()]
    return response(name, *rows, process_id=None, at=now)


def time_check(name: str, directory: Directory, settings: EcmsSettings, now: dt.datetime) -> etree._Element:
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
