"""The city profile: every city-specific detail (name, hours, phone numbers) in one file.

A real city replaces ``knowledge/city.yaml`` (or points ``MADOGUCHI_CITY`` at its own);
entries name only a department, and contacts are looked up here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from knowledge.model import PLACEHOLDER, KnowledgeError

DEFAULT_PROFILE = Path(__file__).with_name("city.yaml")


@dataclass(frozen=True)
class Department:
    name: str
    phone: str
    place: str


@dataclass(frozen=True)
class CityProfile:
    name: str
    hours_text: str
    closed_text: str
    open_time: dt.time
    close_time: dt.time
    main_phone: str
    address: str
    departments: dict[str, Department]

    @classmethod
    def load(cls, path: Path = DEFAULT_PROFILE) -> CityProfile:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
            hours = data["office_hours"]
            return cls(
                name=str(data["name"]),
                hours_text=str(hours["weekdays"]),
                closed_text=str(hours["closed"]),
                open_time=dt.time.fromisoformat(str(hours["open"])),
                close_time=dt.time.fromisoformat(str(hours["close"])),
                main_phone=str(data["main_phone"]),
                address=str(data["address"]),
                departments={
                    name: Department(name, str(d["phone"]), str(d["place"]))
                    for name, d in (data.get("departments") or {}).items()
                },
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
            raise KnowledgeError(f"city profile {path} is unusable: {error!r}") from None

    def render(self, text: str) -> str:
        """Fill in the city placeholders (``{{開庁時間}}`` and the like) of an answer."""
        values = {
            "市名": self.name,
            "開庁時間": self.hours_text,
            "閉庁日": self.closed_text,
            "市役所住所": self.address,
            "代表電話": self.main_phone,
        }
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def contact_for(self, department: str, contact: str = "") -> str:
        """The entry's own contact if it has one, else its department's from the profile."""
        if contact:
            return contact
        known = self.departments.get(department)
        if known is None:
            return f"{department}（代表電話 {self.main_phone}）" if department else ""
        return f"{known.name}（{known.place}、電話 {known.phone}）"

    def is_open(self, moment: dt.datetime) -> bool:
        """Office hours on weekdays. National holidays are not computed here."""
        return moment.weekday() < 5 and self.open_time <= moment.time() < self.close_time
