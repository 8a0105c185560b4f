"""Wiring of delivery_service: settings, the service, the dispatcher, its handlers."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, model_validator

from delivery_service import handlers, store
from delivery_service.dispatch import Dispatcher
from delivery_service.domain import PinKey, Rules
from service_runtime.service import Service
from service_runtime.settings import RuntimeSettings

# A fixed key so a development run (or a test) needs no setup; refused in production (see below).
DEVELOPMENT_PIN_KEY = "development-only-delivery-pin-key-change-me"


class Settings(RuntimeSettings):
    mongodb_database: str = "pharmacy_deliveries"
    # The secret every order's hand-over PIN is derived from (domain.PinKey). Changing it changes the
    # PIN of every delivery not handed over yet, and its stored check no longer matches.
    delivery_pin_key: SecretStr = SecretStr(DEVELOPMENT_PIN_KEY)
    # Over this total (cents) the hand-over needs the patient's PIN; a controlled drug always does.
    pin_over_cents: int = Field(default=10_000, ge=0)
    # How far from the pharmacy a courier may be to be given its delivery.
    courier_reach_km: float = Field(default=15.0, gt=0)
    # The ETA: courier to pharmacy to patient at this speed, plus the time to collect the order.
    courier_speed_kmh: float = Field(default=20.0, gt=0)
    handling_minutes: float = Field(default=5.0, ge=0)
    # Failed attempts at the door before the order goes back to its pharmacy.
    max_delivery_attempts: int = Field(default=2, ge=1)
    # Wrong PINs on one visit before the courier must record the attempt as failed.
    max_wrong_pins: int = Field(default=5, ge=1)
    # A free courier who moved this far says so again (CourierFree): a waiting delivery they now reach
    # is theirs even if the update's own settling is lost. Nearer pings publish nothing.
    courier_free_move_km: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def refuse_development_pin_key(self) -> Settings:
        # A forgotten key must fail at start, not derive every patient's PIN from a value published here.
        key = self.delivery_pin_key.get_secret_value()
        if self.environment not in ("development", "test") and key == DEVELOPMENT_PIN_KEY:
            raise ValueError("DELIVERY_PIN_KEY must be set outside development and tests")
        if len(key) < 32:
            raise ValueError("DELIVERY_PIN_KEY must be at least 32 characters")
        return self

    def rules(self) -> Rules:
        return Rules(
            pin_over_cents=self.pin_over_cents,
            reach_km=self.courier_reach_km,
            speed_kmh=self.courier_speed_kmh,
            handling=timedelta(minutes=self.handling_minutes),
            max_attempts=self.max_delivery_attempts,
            max_wrong_pins=self.max_wrong_pins,
            free_move_km=self.courier_free_move_km,
        )


def build(settings: Settings | None = None) -> Service:
    settings = settings or Settings()
    service = Service("delivery_service", settings)
    stores = store.stores(service)
    rules = settings.rules()
    pins = PinKey(settings.delivery_pin_key.get_secret_value().encode())
    handlers.register(service, stores, Dispatcher(service, stores, rules), pins, rules)
    service.on_start(lambda: store.ensure_indexes(stores))
    return service
