import asyncio

from delivery_service.app import build

asyncio.run(build().run_forever())
