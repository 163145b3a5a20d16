// Browser sign-in for the panel: form posts from the static account pages set Identity's cookie.
using DbStudio.Core.Platform;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;

namespace DbStudio.Web.Apis;

public static class AccountEndpoints
{
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/account").WithTags("Browser accounts");
        g.MapPost("/login", Login);
        g.MapPost("/register", Register);
        g.MapPost("/logout", Logout);
        return app;
    }

    private static async Task<IResult> Login([FromForm] string email, [FromForm] string password, [FromForm] string? returnUrl,
        SignInManager<PlatformUser> signIn)
    {
        var result = await signIn.PasswordSignInAsync(email ?? "", password ?? "", isPersistent: true, lockoutOnFailure: false);
        return result.Succeeded
            ? Results.LocalRedirect(SafeReturn(returnUrl))
            : Results.LocalRedirect($"/account/login?error=1&returnUrl={Uri.EscapeDataString(SafeReturn(returnUrl))}");
    }

    private static async Task<IResult> Register([FromForm] string email, [FromForm] string password,
        UserManager<PlatformUser> users, SignInManager<PlatformUser> signIn)
    {
        var user = new PlatformUser { UserName = email, Email = email };
        var created = await users.CreateAsync(user, password ?? "");
        if (!created.Succeeded)
        {
            var why = string.Join(" ", created.Errors.Select(e => e.Description));
            return Results.LocalRedirect($"/account/register?error={Uri.EscapeDataString(why)}");
        }
        await signIn.SignInAsync(user, isPersistent: true);
        return Results.LocalRedirect("/projects");
    }

    private static async Task<IResult> Logout(SignInManager<PlatformUser> signIn)
    {
        await signIn.SignOutAsync();
        return Results.LocalRedirect("/");
    }

    private static string SafeReturn(string? returnUrl) =>
        string.IsNullOrEmpty(returnUrl) || !returnUrl.StartsWith('/') || returnUrl.StartsWith("//") ? "/projects"
        : returnUrl;
}
