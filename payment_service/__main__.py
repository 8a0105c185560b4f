import asyncio

from payment_service.app import build

asyncio.run(build().run_forever())
