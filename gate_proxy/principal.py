"""Who is calling: an agent, a reviewer or an admin, resolved from an API key."""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    REVIEWER = "reviewer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    role: Role
    environment: str | None = None
    allowed_policies: tuple[str, ...] | None = None
    allowed_destinations: tuple[str, ...] | None = None

    @property
    def can_review(self) -> bool:
        return self.role in (Role.REVIEWER, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see(self, owner_id: str) -> bool:
        """Agents see only their own intents; reviewers and admins see all."""
        return self.can_review or owner_id == self.id


ADMIN_PRINCIPAL_ID = "admin"


def admin_principal() -> Principal:
    return Principal(id=ADMIN_PRINCIPAL_ID, name="admin", role=Role.ADMIN)
