import asyncio

from order_service.app import build

asyncio.run(build().run_forever())
