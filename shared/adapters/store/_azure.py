"""Azure Storage helpers: where a client connects, and a container built (and created) on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import ContainerClient

logger = logging.getLogger(__name__)


def _create_if_missing(create: Callable[[], Any], what: str) -> None:
    """Create a container or queue; one that exists, or an identity not allowed to create (infra made it), is fine."""
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    try:
        create()
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        logger.info("not allowed to create %s; assuming it exists", what)


@dataclass(frozen=True, slots=True)
class _StorageAccount:
    """Where a Storage client connects: an account URL with a credential, or a connection string (Azurite)."""

    account_url: str | None
    credential: TokenCredential | str | None
    connection_string: str | None

    def __post_init__(self) -> None:
        if (self.account_url is None) == (self.connection_string is None):
            raise ValueError("pass exactly one of account_url or connection_string")


class _LazyContainer:
    """A ContainerClient built on first use (never at import or construction), the container created if missing."""

    def __init__(
        self,
        *,
        account_url: str | None,
        credential: TokenCredential | str | None,
        connection_string: str | None,
        container: str,
    ) -> None:
        self._account = _StorageAccount(account_url, credential, connection_string)
        self.name = container
        self._client: ContainerClient | None = None
        self._lock = threading.Lock()

    def get(self) -> ContainerClient:
        with self._lock:
            if self._client is None:
                from azure.storage.blob import BlobServiceClient

                account = self._account
                if account.connection_string is not None:
                    service = BlobServiceClient.from_connection_string(account.connection_string)
                else:
                    service = BlobServiceClient(account.account_url or "", credential=account.credential)
                client = service.get_container_client(self.name)
                _create_if_missing(client.create_container, f"container {self.name}")
                self._client = client
            return self._client
