"""One router per audience: chat (residents), staff, health, pages."""
