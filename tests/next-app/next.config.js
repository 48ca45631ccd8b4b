// A small Next.js app for tests/bundle.rs: built for real with Next 15 and 16, webpack
// and Turbopack, to check `sloprobe bundle` against the files each built page loads.
module.exports = { reactStrictMode: true, poweredByHeader: false };
