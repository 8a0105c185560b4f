// "Use my location" on the courier's page: fills the latitude and longitude fields from the browser's
// geolocation. Our own file (the CSP allows no inline script); without it the fields are typed in.
(() => {
  const button = document.getElementById("use-location");
  const said = document.getElementById("location-status");
  if (!button || !said || !("geolocation" in navigator)) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    said.textContent = "Finding where you are...";
    navigator.geolocation.getCurrentPosition(
      (position) => {
        document.getElementById("latitude").value = position.coords.latitude.toFixed(5);
        document.getElementById("longitude").value = position.coords.longitude.toFixed(5);
        said.textContent = "Your position is filled in: save your status to send it.";
      },
      () => {
        said.textContent = "Your location is not available: type it in instead.";
      },
      { enableHighAccuracy: true, timeout: 10000 },
    );
  });
})();
