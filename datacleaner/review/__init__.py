"""The review app and its neighbours: review lists on disk, thumbnails, the browser review
server, the shareable HTML report, and the Label Studio round trip. The core never imports it."""
