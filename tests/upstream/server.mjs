// A real, independent upstream OpenID provider for NC Connect's tests, configured like
// a FranceConnect identity provider: panva's certified `oidc-provider`, code flow with
// PKCE, pivot-identity claims by scope, acr eidas1/eidas2, ES256 and RS256 keys
// generated at start, client_secret_post by default, userinfo as JSON or as a signed
// JWT (client metadata `userinfo_signed_response_alg`), RP-initiated logout.
//
// Logging in needs no human: GET /interaction/<uid> shows a small form, and a test POSTs
// `account=<id>` (optionally `acr=eidas1`, `amr=pwd mfa`) to /interaction/<uid>/login,
// or POSTs to /interaction/<uid>/abort to get `error=access_denied`.  Consent is granted
// automatically.
//
// Environment:
//   UPSTREAM_ACCOUNTS            path to a JSON file {account id: {claim: value, ..., "amr": [...]}}
//   UPSTREAM_CLIENTS             JSON array of client metadata registered at start (optional)
//   UPSTREAM_REGISTRATION_TOKEN  initial access token enabling dynamic registration at /reg (optional)
//   UPSTREAM_HOST                listen address (default 127.0.0.1)
//   UPSTREAM_PORT                port (default 0: any free port)
// Command line: `node server.mjs [--port N] [--accounts FILE] [--clients JSON]`.
// Once listening it prints one line `READY http://localhost:<port>` (the issuer) on stdout.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    accounts: { type: 'string' },
    clients: { type: 'string' },
  },
});

const host = process.env.UPSTREAM_HOST || '127.0.0.1';
const port = Number(args.port ?? process.env.UPSTREAM_PORT ?? 0);
const accountsFile = args.accounts ?? process.env.UPSTREAM_ACCOUNTS;
const accounts = accountsFile ? JSON.parse(readFileSync(accountsFile, 'utf8')) : {};
const clients = JSON.parse(args.clients ?? process.env.UPSTREAM_CLIENTS ?? '[]');
const registrationToken = process.env.UPSTREAM_REGISTRATION_TOKEN || '';

const ACR_VALUES = ['eidas1', 'eidas2'];

// FranceConnect v2 scopes: each pivot claim has its own scope, plus the grouped ones.
const PIVOT = ['given_name', 'family_name', 'birthdate', 'gender', 'birthplace', 'birthcountry'];
const claims = {
  acr: null,
  amr: null,
  auth_time: null,
  sid: null,
  iss: null,
  // acr and amr in every ID token, like FranceConnect's identity providers (FranceConnect
  // itself gives amr only when asked through `claims`).
  openid: ['sub', 'acr', 'amr'],
  profile: ['given_name', 'family_name', 'birthdate', 'gender', 'preferred_username'],
  email: ['email'],
  birth: ['birthplace', 'birthcountry'],
  identite_pivot: PIVOT,
};
for (const claim of [...PIVOT, 'email', 'preferred_username']) {
  claims[claim] = [claim];
}

function signingKey(type, alg, kid) {
  const options = type === 'ec' ? { namedCurve: 'P-256' } : { modulusLength: 2048 };
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function htmlEscape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function configuration() {
  return {
    clients,
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'ES256',
    },
    jwks: {
      keys: [
        signingKey('ec', 'ES256', `es256-${randomBytes(6).toString('hex')}`),
        signingKey('rsa', 'RS256', `rs256-${randomBytes(6).toString('hex')}`),
      ],
    },
    acrValues: ACR_VALUES,
    responseTypes: ['code'],
    claims,
    scopes: Object.keys(claims).filter((k) => claims[k] !== null),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256', 'RS256'],
      userinfoSigningAlgValues: ['ES256', 'RS256'],
    },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
      jwtUserinfo: { enabled: true },
      registration: registrationToken
        ? { enabled: true, initialAccessToken: registrationToken }
        : { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = `<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Déconnexion</title></head>
<body>${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Se déconnecter</button></body></html>`;
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Déconnecté</title></head><body>Vous êtes déconnecté.</body></html>';
        },
      },
    },
    ttl: {
      AccessToken: 60,
      AuthorizationCode: 30,
      IdToken: 60,
      Interaction: 600,
      Session: 1800,
      Grant: 1800,
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          const { amr, acr, ...attributes } = account;
          return { ...attributes, sub: id };
        },
      };
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Erreur</title></head><body>${
        Object.entries(out).map(([k, v]) => `<p><b>${htmlEscape(k)}</b>: ${htmlEscape(v)}</p>`).join('')}</body></html>`;
    },
  };
}

function loginPage(uid, details) {
  const options = Object.keys(accounts)
    .map((id) => `<option value="${htmlEscape(id)}">${htmlEscape(id)}</option>`).join('');
  return `<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Connexion</title></head><body>
<h1>Fournisseur d'identité de test</h1><p>Client : ${htmlEscape(details.params.client_id)}</p>
<form method="post" action="/interaction/${htmlEscape(uid)}/login">
<select name="account">${options}</select>
<input name="acr" placeholder="acr (facultatif)"><input name="amr" placeholder="amr (facultatif)">
<button type="submit">Se connecter</button></form>
<form method="post" action="/interaction/${htmlEscape(uid)}/abort"><button type="submit">Annuler</button></form>
</body></html>`;
}

// The acr granted by default: the highest requested value this provider supports, else eidas1.
function defaultAcr(details) {
  const requested = String(details.params.acr_values || '').split(' ').filter((v) => ACR_VALUES.includes(v));
  return requested.length ? requested.sort().at(-1) : 'eidas1';
}

async function grantConsent(provider, details) {
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

async function interaction(provider, req, res, url) {
  const match = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
  if (!match) return send(res, 404, 'not found', 'text/plain; charset=utf-8');
  const [, uid, action] = match;
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch', 'text/plain; charset=utf-8');

  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'consent') {
      const grantId = await grantConsent(provider, details);
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    return send(res, 200, loginPage(uid, details));
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: "L'usager a annulé la connexion",
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const accountId = form.get('account') || '';
    const account = accounts[accountId];
    if (!account) return send(res, 400, loginPage(uid, details));
    const acr = form.get('acr') || account.acr || defaultAcr(details);
    const amr = (form.get('amr') || '').split(' ').filter(Boolean);
    return provider.interactionFinished(req, res, {
      login: { accountId, acr, amr: amr.length ? amr : (account.amr || ['pwd']), remember: false },
    }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, 'method not allowed', 'text/plain; charset=utf-8');
}

let handler = null;
const server = createServer((req, res) => handler(req, res));
server.listen(port, host, () => {
  const issuer = `http://localhost:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const callback = provider.callback();
  handler = (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/interaction/')) {
      interaction(provider, req, res, url).catch((err) => {
        console.error('interaction error', err);
        if (!res.headersSent) send(res, 400, htmlEscape(err.message));
      });
      return;
    }
    callback(req, res);
  };
  console.log(`READY ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
