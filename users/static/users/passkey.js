/*
 * "Use a passkey" on every page that takes one: the admin's second step and "confirm it's you" pages, and the
 * single sign-on pages' sign-in (passwordless) and second step.
 *
 * The button (#use-passkey) names its form (data-form) and the URL of its options (data-options-url); data-send
 * lists the form's fields the options need (the sign-on pages' mfa_token), data-restart the page to go back to when
 * the pending sign-in expired (else the page reloads). A click asks that URL for the options (POST with the page's
 * CSRF token), passes them to navigator.credentials.get(), puts the answer (credential.toJSON(), binary values
 * base64url) in the form's hidden "webauthn" field and submits the form, which the server checks like a code. A
 * separate file, no inline script: the pages work under "script-src 'self'". Without JavaScript or WebAuthn the
 * button stays hidden and the password and codes work as before.
 */
(function () {
  "use strict";

  var button = document.getElementById("use-passkey");
  if (!button || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  var form = document.getElementById(button.getAttribute("data-form"));
  var status = document.getElementById("passkey-status");
  if (!form || !form.elements.webauthn) {
    return;
  }

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json, { challenge: toBuffer(json.challenge) });
    if (json.allowCredentials) {
      options.allowCredentials = json.allowCredentials.map(function (item) {
        return Object.assign({}, item, { id: toBuffer(item.id) });
      });
    }
    return options;
  }

  function answerJSON(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: toText(response.userHandle),
      },
    };
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function usePasskey() {
    button.disabled = true;
    say("Waiting for your passkey\u2026");
    var sent = new URLSearchParams();
    (button.getAttribute("data-send") || "").split(" ").forEach(function (name) {
      if (name && form.elements[name]) {
        sent.append(name, form.elements[name].value);
      }
    });
    fetch(button.getAttribute("data-options-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": form.elements.csrfmiddlewaretoken.value },
      body: sent,
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            if (body.code === "mfa_token_invalid") {
              // the sign-in expired: back to the password
              var restart = button.getAttribute("data-restart");
              if (restart) {
                window.location.assign(restart);
              } else {
                window.location.reload();
              }
            }
            throw new Error(body.detail || "The passkey cannot be used now.");
          }
          return body;
        });
      })
      .then(function (options) {
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      })
      .then(function (credential) {
        if (!credential) {
          throw new Error("No passkey was chosen.");
        }
        Array.prototype.forEach.call(form.querySelectorAll("input[type=text], input[type=password]"), function (input) {
          input.value = ""; // the passkey is the one proof this form sends
        });
        form.elements.webauthn.value = JSON.stringify(answerJSON(credential));
        say("Checking\u2026");
        form.submit();
      })
      .catch(function (error) {
        button.disabled = false;
        say(error && error.name === "NotAllowedError" ? "The passkey was not used; try again." : String(error.message || error));
      });
  }

  button.hidden = false;
  button.addEventListener("click", usePasskey);
})();
