"""dealbase: an API-first backend for B2B sales."""
