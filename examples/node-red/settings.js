// Node-RED settings for a headless instance running the Deviceless example flow, e.g.
//   node node_modules/node-red/red.js --userDir DIR --settings examples/node-red/settings.js
// The end-to-end test (test/nodered_test.go) uses it with a temporary user directory and a
// free port (NODE_RED_PORT). Everything listens on 127.0.0.1 only; nothing phones home.
module.exports = {
    uiHost: process.env.NODE_RED_HOST || "127.0.0.1",
    uiPort: parseInt(process.env.NODE_RED_PORT || "1880", 10),
    flowFile: "flows.json",
    flowFilePretty: true,
    // Credentials (the MQTT user and password) are stored unencrypted in flows_cred.json in
    // the user directory: no secret to type at start-up. Set a string here to encrypt them.
    credentialSecret: false,
    // No telemetry, update checks or diagnostics endpoint.
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    // No palette installs from npm at run time.
    externalModules: { autoInstall: false, palette: { allowInstall: false, allowUpdate: false, allowUpload: false } },
    functionExternalModules: false,
    editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } },
    logging: { console: { level: "info", metrics: false, audit: false } },
};
