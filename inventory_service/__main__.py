import asyncio

from inventory_service.app import build

asyncio.run(build().run_forever())
