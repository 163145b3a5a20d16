// BlazorMonaco 3.0.0 calls the browser through one static IJSRuntime, set by whichever editor was initialised last
// anywhere on the server: on Blazor Server one person's editor was created in another person's browser
// (PanelBrowserTests.Two_people_opening_the_sql_tab_at_once…). The app keeps the package for Monaco's files only; this
// reads the web assembly's metadata (Razor components included, which analyzers skip as generated code) and fails if
// any of the package's types that reach that runtime is used again.
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace DbStudio.Tests.Unit;

public class SharedRuntimeTests
{
    /// <summary>BlazorMonaco's types whose calls go through its static JsRuntimeExt.Shared.</summary>
    private static readonly string[] Banned =
        ["StandaloneCodeEditor", "StandaloneDiffEditor", "CodeEditor", "DiffEditor", "Editor", "Global", "TextModel"];

    [Fact]
    public void The_web_app_uses_none_of_blazor_monacos_types_that_share_one_js_runtime_across_circuits()
    {
        var path = typeof(DbStudio.Web.Components.Panel.SqlEditor).Assembly.Location;
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var used = md.TypeReferences.Select(h => md.GetTypeReference(h))
            .Select(t => $"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}")
            .Where(n => n.StartsWith("BlazorMonaco", StringComparison.Ordinal))
            .ToList();
        Assert.Empty(used.Where(n => n.StartsWith("BlazorMonaco.Editor.", StringComparison.Ordinal) && Banned.Contains(n["BlazorMonaco.Editor.".Length..])));
        // The editor this app uses instead is its own component.
        Assert.Contains(md.TypeDefinitions, h => md.GetString(md.GetTypeDefinition(h).Name) == "SqlEditor");
    }
}
