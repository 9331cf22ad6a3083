"""Where the report page goes after a change: a private blob container (Azure), or a folder (local runs).

The latest page is `latest.html`; every committed change also keeps a dated copy
`YYYY/MM/DD/report-<time>-run-<state sequence>.html`, which the change's alert names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shared.adapters.store._azure import _LazyContainer
from shared.adapters.store._local import _replace_atomically

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

DEFAULT_REPORT_CONTAINER = "er-transit-report"
LATEST_REPORT = "latest.html"
REPORT_CONTENT_TYPE = "text/html; charset=utf-8"


def dated_report_name(*, sequence: int, when: datetime) -> str:
    """The dated copy's blob name for the commit `sequence` made at `when` (UTC), e.g.
    `2026/11/25/report-20261125T224300Z-run-000012.html` (names sort by time within a day)."""
    moment = when.astimezone(UTC)
    return f"{moment:%Y/%m/%d}/report-{moment:%Y%m%dT%H%M%SZ}-run-{sequence:06d}.html"


class BlobReportPublisher:
    """The report pages in a blob container (private: infra creates it without public access; so does this class
    when it has to create it, as `create_container` sets no public access by default)."""

    def __init__(self, *, account_url: str | None = None, credential: TokenCredential | str | None = None,
                 connection_string: str | None = None, container: str = DEFAULT_REPORT_CONTAINER) -> None:
        self._container = _LazyContainer(account_url=account_url, credential=credential,
                                         connection_string=connection_string, container=container)
        self.location = container

    def names(self, *, sequence: int, when: datetime) -> tuple[str, str]:
        return LATEST_REPORT, dated_report_name(sequence=sequence, when=when)

    def publish(self, page: str, *, sequence: int, when: datetime) -> None:
        from azure.storage.blob import ContentSettings

        data = page.encode("utf-8")
        settings = ContentSettings(content_type=REPORT_CONTENT_TYPE)
        container = self._container.get()
        latest, dated = self.names(sequence=sequence, when=when)
        # The dated copy first: a reader of latest.html never sees a page whose copy is missing.
        container.upload_blob(dated, data, overwrite=True, content_settings=settings)
        container.upload_blob(latest, data, overwrite=True, content_settings=settings)
        logger.info("report page written: %s/%s and %s (%d bytes)", self.location, latest, dated, len(data))


class LocalReportPublisher:
    """The report pages in a folder (`<store>/er-transit-report/`), for local runs and the demo."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.location = str(self.folder)

    def names(self, *, sequence: int, when: datetime) -> tuple[str, str]:
        return LATEST_REPORT, dated_report_name(sequence=sequence, when=when)

    def publish(self, page: str, *, sequence: int, when: datetime) -> None:
        data = page.encode("utf-8")
        for name in reversed(self.names(sequence=sequence, when=when)):  # the dated copy first
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            _replace_atomically(path, data)


def report_publisher_from_settings(settings: Mapping[str, str]) -> BlobReportPublisher | LocalReportPublisher:
    """The report's destination for these app settings, chosen like the state and audit log (store_from_settings):
    the container `REPORT_CONTAINER` (default er-transit-report) of the same account, else `<STORE_DIR>/<it>/`."""
    from shared.adapters.store.wiring import DEFAULT_STORE_DIR

    container = settings.get("REPORT_CONTAINER") or DEFAULT_REPORT_CONTAINER
    connection_string = settings.get("AuditorStorage") or None
    blob_uri = settings.get("AuditorStorage__blobServiceUri") or None
    if connection_string is not None:
        return BlobReportPublisher(connection_string=connection_string, container=container)
    if blob_uri is not None:
        from azure.identity import DefaultAzureCredential

        client_id = settings.get("AuditorStorage__clientId") or settings.get("AZURE_CLIENT_ID") or None
        return BlobReportPublisher(account_url=blob_uri, credential=DefaultAzureCredential(
            managed_identity_client_id=client_id), container=container)
    return LocalReportPublisher(Path(settings.get("STORE_DIR") or DEFAULT_STORE_DIR) / container)
