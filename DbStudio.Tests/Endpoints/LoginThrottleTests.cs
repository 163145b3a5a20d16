// One sign-in policy for both doors to a platform account (issue 12): the browser form (/account/login) and
// POST /api/auth/login share LoginThrottle. Wrong passwords slow down the address they come from — per account, with
// a doubling wait after 5 free ones, and per address over all accounts (30 in 15 minutes) — and never lock the owner
// out: there is no account lockout. The app runs on a FakeTimeProvider, so the waits are exact and the machine's speed
// does not matter; X-Test-Client-Address plays clients at several addresses.
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using DbStudio.Core.Platform;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace DbStudio.Tests.Endpoints;

public partial class LoginThrottleTests(TestApp app)
{
    private const string Attacker = "203.0.113.7", Owner = "198.51.100.20", Sprayer = "192.0.2.55";
    private const string Password = "the owner's password";

    /// <summary>The two doors of an app: a test server (factory), or the fixture's app on its real port (kestrel).</summary>
    private sealed class Doors(AppFactory factory, Uri? kestrel = null)
    {
        private HttpClient Browser() => kestrel is null
            ? factory.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = true })
            : new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true }) { BaseAddress = kestrel };

        public async Task<HttpResponseMessage> ApiAsync(string address, string? email, string password)
        {
            var req = new HttpRequestMessage(HttpMethod.Post, "/api/auth/login") { Content = JsonContent.Create(new { email, password }) };
            req.Headers.Add(ClockedApp.AddressHeader, address);
            return await factory.CreateClient().SendAsync(req);
        }

        /// <summary>Signs in through the browser form (with its antiforgery token) and returns where it redirects to.</summary>
        public async Task<string> FormAsync(string address, string email, string password, string? returnUrl = null)
        {
            var browser = Browser();
            browser.DefaultRequestHeaders.Add(ClockedApp.AddressHeader, address);
            var page = await browser.GetStringAsync("/account/login");
            var token = Token().Match(page).Groups[1].Value;
            var fields = new Dictionary<string, string> { ["email"] = email, ["password"] = password, ["__RequestVerificationToken"] = token };
            if (returnUrl is not null) fields["returnUrl"] = returnUrl;
            var res = await browser.PostAsync("/account/login", new FormUrlEncodedContent(fields));
            Assert.Equal(HttpStatusCode.Redirect, res.StatusCode);
            return res.Headers.Location!.OriginalString;
        }
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex Token();

    private static ClockedApp Throttled(TestApp app, FakeTimeProvider clock) => new(app.Db.PlatformConnectionString, clock,
        new Dictionary<string, string?> { ["DbStudio:Login:FailuresPerAddress"] = "30" }); // the default, which TestApp turns off

    private static async Task<string> RegisterAsync(AppFactory factory)
    {
        var email = $"owner{Guid.NewGuid():N}@example.com";
        (await factory.CreateClient().PostAsJsonAsync("/api/auth/register", new { email, password = Password })).EnsureSuccessStatusCode();
        return email;
    }

    private static string RetryAfter(HttpResponseMessage res) => res.Headers.GetValues("Retry-After").Single();

    [Fact]
    public async Task Wrong_passwords_slow_their_address_down_on_both_doors_and_never_lock_the_owner_out()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var factory = Throttled(app, clock);
        var doors = new Doors(factory);
        var email = await RegisterAsync(factory);

        // Five wrong passwords cost nothing, the sixth is answered too; then the attacker's address waits 1 s.
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync(Attacker, email, $"guess {i}")).StatusCode);
        var refused = await doors.ApiAsync(Attacker, email, "guess 6");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("1", RetryAfter(refused));
        Assert.Contains("try again in 1 s", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString());
        // While it waits, not even the right password is checked from there — at either door.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await doors.ApiAsync(Attacker, email, Password)).StatusCode);
        Assert.Equal("/account/login?error=wait&retry=1&returnUrl=%2Fprojects", await doors.FormAsync(Attacker, email, Password));

        // The owner, at another address, signs in at once through either door.
        var owner = await doors.ApiAsync(Owner, email, Password);
        Assert.Equal(HttpStatusCode.OK, owner.StatusCode);
        Assert.False(string.IsNullOrEmpty((await owner.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString()));
        Assert.Equal("/projects", await doors.FormAsync(Owner, email, Password));

        // Each further wrong password doubles the attacker's wait; Retry-After is exactly the time left.
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync(Attacker, email, "guess 7")).StatusCode);
        Assert.Equal("2", RetryAfter(await doors.ApiAsync(Attacker, email, "guess 8")));
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("/account/login?error=1&returnUrl=%2Fprojects", await doors.FormAsync(Attacker, email, "guess 9")); // a failure at the form…
        Assert.Equal("4", RetryAfter(await doors.ApiAsync(Attacker, email, "guess 10")));                                // …counts at the API
        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal("/account/login?error=wait&retry=1&returnUrl=%2Fprojects", await doors.FormAsync(Attacker, email, "guess 11"));

        // Identity's own lockout never engaged: nothing a stranger does locks the account.
        using (var scope = factory.Services.CreateScope())
        {
            var users = scope.ServiceProvider.GetRequiredService<UserManager<PlatformUser>>();
            var user = (await users.FindByEmailAsync(email))!;
            Assert.False(await users.IsLockedOutAsync(user));
            Assert.Equal(0, await users.GetAccessFailedCountAsync(user));
        }

        // Once the wait is over, the right password from that address works and clears its count: five free again.
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await doors.ApiAsync(Attacker, email, Password)).StatusCode);
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync(Attacker, email, $"again {i}")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await doors.ApiAsync(Attacker, email, "again 6")).StatusCode);
    }

    [Fact]
    public async Task One_address_has_a_budget_of_wrong_passwords_over_all_accounts()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var factory = Throttled(app, clock);
        var doors = new Doors(factory);
        var email = await RegisterAsync(factory);

        // Spraying one guess at each of many accounts: 30 wrong passwords in 15 minutes, then the address waits until
        // the oldest leaves the window.
        for (var i = 0; i < 30; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync(Sprayer, $"victim{i}@example.com", "password1")).StatusCode);
            clock.Advance(TimeSpan.FromSeconds(10));
        }
        var refused = await doors.ApiAsync(Sprayer, "victim30@example.com", "password1");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal($"{15 * 60 - 300}", RetryAfter(refused));
        Assert.Equal($"/account/login?error=wait&retry={15 * 60 - 300}&returnUrl=%2Fprojects", await doors.FormAsync(Sprayer, email, Password));
        // Other addresses are not held back.
        Assert.Equal(HttpStatusCode.OK, (await doors.ApiAsync(Owner, email, Password)).StatusCode);
        clock.Advance(TimeSpan.FromSeconds(15 * 60 - 300));
        Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync(Sprayer, "victim30@example.com", "password1")).StatusCode);

        // An IPv6 client holds a whole /64: rotating through it does not buy more guesses.
        for (var i = 0; i < 30; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync($"2001:db8:7:9::{i + 1:x}", $"v6victim{i}@example.com", "password1")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await doors.ApiAsync("2001:db8:7:9:ffff::1", "v6victim@example.com", "password1")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await doors.ApiAsync("2001:db8:7:a::1", "v6victim@example.com", "password1")).StatusCode);
    }

    [Theory]
    [InlineData("/\\evil.example")]
    [InlineData("//evil.example")]
    [InlineData("https://evil.example/")]
    [InlineData("javascript:alert(1)")]
    [InlineData("/\t/evil.example")]
    [InlineData("evil.example")]
    [InlineData("")]
    public async Task A_bad_return_url_falls_back_to_the_project_list(string returnUrl)
    {
        var doors = new Doors(app.Factory, app.BaseUrl);
        var email = await RegisterAsync(app.Factory);
        Assert.Equal("/projects", await doors.FormAsync(Owner, email, Password, returnUrl));
        Assert.Equal("/account/login?error=1&returnUrl=%2Fprojects", await doors.FormAsync(Owner, email, "wrong password", returnUrl));
        var page = await app.Factory.CreateClient().GetAsync($"/account/login?returnUrl={Uri.EscapeDataString(returnUrl)}");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
    }

    [Fact]
    public async Task A_return_url_on_this_site_is_kept()
    {
        var doors = new Doors(app.Factory, app.BaseUrl);
        var email = await RegisterAsync(app.Factory);
        Assert.Equal("/projects/abc123?tab=sql", await doors.FormAsync(Owner, email, Password, "/projects/abc123?tab=sql"));
    }
}
