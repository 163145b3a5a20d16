// Playwright's assertions wait for a condition — 5 s by default, tight for a Blazor round trip on a slow, shared CI
// machine with two browsers and PostgreSQL on two cores. They return as soon as the condition holds, so a longer limit
// costs a passing test nothing; set once for every browser test, before any runs.
using System.Runtime.CompilerServices;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

internal static class ExpectTimeout
{
    [ModuleInitializer]
    internal static void Set() => Assertions.SetDefaultExpectTimeout(15_000);
}
