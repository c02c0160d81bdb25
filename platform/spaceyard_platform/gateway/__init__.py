"""The gateway: routes visitors' HTTP, server-sent events and websockets to the apps."""
